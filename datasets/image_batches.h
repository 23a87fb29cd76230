// Image files -> preprocessed NCHW batches, decoded on worker threads while the caller runs the model
// on the previous batch. A file that fails to decode is reported in its batch and never stops the run.
#pragma once

#include "vision/image_io.h"
#include "vision/transforms.h"

#include <torch/types.h>

#include <future>
#include <memory>
#include <string>
#include <vector>

namespace attnvision::datasets {

struct BatchItem {
  std::string path;
  std::string error;  // empty when decoded
  int width = 0;      // of the decoded image (after EXIF orientation)
  int height = 0;
  bool ok() const { return error.empty(); }
};

struct ImageBatch {
  std::vector<BatchItem> items;  // every input of this batch, in input order
  torch::Tensor images;          // one row per ok item, in item order (undefined when none decoded)
  std::vector<size_t> rows;      // rows[k] = index into items of row k
};

struct LoaderOptions {
  int64_t batch_size = 16;
  int workers = 0;  // decode threads; 0: all cores
  vision::ImageReadOptions read;
};

class ImageBatchLoader {
 public:
  ImageBatchLoader(std::vector<std::string> files, vision::EvalTransform transform, LoaderOptions options);
  ~ImageBatchLoader();
  // The next batch, or false at the end. The batch after it is already being decoded.
  bool next(ImageBatch& out);
  size_t size() const { return files_.size(); }

 private:
  ImageBatch load(size_t begin) const;
  void prefetch();

  std::vector<std::string> files_;
  vision::EvalTransform transform_;
  LoaderOptions options_;
  size_t next_begin_ = 0;
  std::future<ImageBatch> pending_;
};

}  // namespace attnvision::datasets
