#include "datasets/image_batches.h"

#include "datasets/batch.h"
#include "models/runtime.h"

#include <algorithm>
#include <atomic>
#include <thread>

namespace attnvision::datasets {

ImageBatchLoader::ImageBatchLoader(std::vector<std::string> files, vision::EvalTransform transform,
                                   LoaderOptions options)
    : files_(std::move(files)), transform_(std::move(transform)), options_(options) {
  if (options_.batch_size < 1) options_.batch_size = 1;
  if (options_.workers <= 0) options_.workers = models::available_cores();
  prefetch();
}

ImageBatchLoader::~ImageBatchLoader() {
  if (pending_.valid()) pending_.wait();
}

void ImageBatchLoader::prefetch() {
  if (next_begin_ >= files_.size()) return;
  const size_t begin = next_begin_;
  next_begin_ = std::min(files_.size(), begin + static_cast<size_t>(options_.batch_size));
  pending_ = std::async(std::launch::async, [this, begin] { return load(begin); });
}

bool ImageBatchLoader::next(ImageBatch& out) {
  if (!pending_.valid()) return false;
  out = pending_.get();
  prefetch();
  return true;
}

ImageBatch ImageBatchLoader::load(size_t begin) const {
  const size_t end = std::min(files_.size(), begin + static_cast<size_t>(options_.batch_size));
  const size_t n = end - begin;
  ImageBatch batch;
  batch.items.resize(n);
  // Decode straight into a full-size batch; failed rows are dropped afterwards (rare, and cheaper than
  // decoding twice or locking a shared row counter).
  torch::Tensor full = empty_batch(static_cast<int64_t>(n), transform_);
  std::atomic<size_t> cursor{0};
  auto work = [&] {
    for (size_t i = cursor++; i < n; i = cursor++) {
      BatchItem& item = batch.items[i];
      item.path = files_[begin + i];
      try {
        cv::Mat image = vision::read_image(item.path, options_.read);
        item.width = image.cols;
        item.height = image.rows;
        fill_slot(full, static_cast<int64_t>(i), image, transform_);
      } catch (const std::exception& e) {
        item.error = e.what();
      }
    }
  };
  const int threads = std::max(1, std::min<int>(options_.workers, static_cast<int>(n)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();

  for (size_t i = 0; i < n; ++i)
    if (batch.items[i].ok()) batch.rows.push_back(i);
  if (batch.rows.size() == n) {
    batch.images = full;
  } else if (!batch.rows.empty()) {
    std::vector<int64_t> keep(batch.rows.begin(), batch.rows.end());
    batch.images = full.index_select(0, torch::tensor(keep, torch::kLong));
  }
  return batch;
}

}  // namespace attnvision::datasets
