// The binary's heap in transparent huge pages.
//
// tcmalloc takes memory from the kernel in runs of 1 MB or more, and the kernel backs them with 4 KB pages,
// each faulted in on first touch. On this project's 2-core machine (a VM) a first touch costs about 11 us a
// page: writing 100 MB of fresh memory (ResNet-50's weights) took 0.35-0.49 s, and 0.08-0.25 s in huge pages
// (the same write to memory already touched: 0.06-0.11 s). A ResNet-50 batch of 300 JPEGs faulted 170,000
// pages, 1.5-1.8 s of system CPU. Debian's kernels give huge pages to the regions that ask for them (transparent_hugepage =
// madvise), so every run tcmalloc takes from the kernel is rounded up to whole 2 MB pages, aligned and
// advised MADV_HUGEPAGE. Call first thing in main(), before the large allocations. ATTNVISION_HUGE_PAGES=0
// leaves tcmalloc as it is.
#pragma once

namespace attnvision::cli {

void back_heap_with_huge_pages();

}  // namespace attnvision::cli
