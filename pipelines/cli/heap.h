// The binary's heap (tcmalloc): in transparent huge pages, and kept once touched.
//
// tcmalloc takes memory from the kernel in runs of 1 MB or more, and the kernel backs them with 4 KB pages,
// each faulted in on first touch. On this project's 2-core machine (a VM) a first touch costs about 11 us a
// page: writing 100 MB of fresh memory (ResNet-50's weights) took 0.35-0.49 s, and 0.08-0.25 s in huge pages
// (the same write to memory already touched: 0.06-0.11 s). A ResNet-50 batch of 300 JPEGs faulted 170,000
// pages, 1.5-1.8 s of system CPU. Debian's kernels give huge pages to the regions that ask for them (transparent_hugepage =
// madvise), so every run tcmalloc takes from the kernel is rounded up to whole 2 MB pages, aligned and
// advised MADV_HUGEPAGE (ATTNVISION_HUGE_PAGES=0 leaves that out).
//
// For the same reason freed memory stays in tcmalloc's heap rather than going back to the kernel, which it
// does bit by bit by default (release rate 1): a page given back is faulted and zeroed again at its next use.
// On ResNet-50 over 300 JPEGs (`batch`, 5 alternating pairs) that cost a median 0.2 s of an 8 s run (0.04 to
// 0.3 s; system CPU, medians, 0.47 -> 0.35 s). It is the
// tcmalloc form of models::keep_freed_memory, which sets glibc's malloc alike. Peak memory is unchanged: what
// the heap keeps is what it once held. Call first thing in main(), before the large allocations.
#pragma once

namespace attnvision::cli {

void tune_heap();

}  // namespace attnvision::cli
