#include "pipelines/cli/heap.h"

#include <gperftools/malloc_extension.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace attnvision::cli {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;  // x86-64's transparent huge page

// tcmalloc's own system allocator (sbrk, then mmap), asked for whole, aligned huge pages, each run advised so.
class HugePageSysAllocator : public SysAllocator {
 public:
  explicit HugePageSysAllocator(SysAllocator* base) : base_(base) {}

  void* Alloc(size_t size, size_t* actual_size, size_t alignment) override {
    const size_t rounded = (size + kHugePage - 1) / kHugePage * kHugePage;
    void* p = base_->Alloc(rounded, actual_size, std::max(alignment, kHugePage));
    // A kernel without transparent huge pages (or with them off) refuses the advice: small pages, as before.
    if (p) (void)madvise(p, *actual_size, MADV_HUGEPAGE);
    return p;
  }

 private:
  SysAllocator* base_;
};

}  // namespace

void tune_heap() {
  MallocExtension* tcmalloc = MallocExtension::instance();
  SysAllocator* base = tcmalloc->GetSystemAllocator();
  if (!base) return;  // not tcmalloc: leave the allocator alone
  tcmalloc->SetMemoryReleaseRate(0);
  if (const char* v = std::getenv("ATTNVISION_HUGE_PAGES"); v && std::strcmp(v, "0") == 0) return;
  // Lives as long as the process: tcmalloc calls it until exit.
  static HugePageSysAllocator huge(base);
  tcmalloc->SetSystemAllocator(&huge);
}

}  // namespace attnvision::cli
