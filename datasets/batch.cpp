#include "datasets/batch.h"

namespace attnvision::datasets {

torch::Tensor empty_batch(int64_t n, const vision::EvalTransform& t) {
  return torch::empty({n, t.channels, t.height, t.width}, torch::kFloat32);
}

void fill_slot(torch::Tensor& batch, int64_t index, const cv::Mat& image, const vision::EvalTransform& t) {
  TORCH_CHECK(batch.is_contiguous() && batch.dim() == 4 && index < batch.size(0), "fill_slot: bad batch or index");
  vision::apply_eval_transform(image, t, batch[index].data_ptr<float>());
}

}  // namespace attnvision::datasets
