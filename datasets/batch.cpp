#include "datasets/batch.h"

namespace attnvision::datasets {

torch::Tensor empty_batch(int64_t n, const vision::EvalTransform& t) {
  return torch::empty({n, t.channels, t.height, t.width}, torch::kFloat32);
}

void fill_slot(torch::Tensor& batch, int64_t index, const cv::Mat& image, const vision::EvalTransform& t) {
  TORCH_CHECK(batch.is_contiguous() && batch.dim() == 4 && index < batch.size(0), "fill_slot: bad batch or index");
  vision::apply_eval_transform(image, t, batch[index].data_ptr<float>());
}

cv::Mat map_to_mat(const torch::Tensor& map) {
  TORCH_CHECK(map.dim() == 2, "map_to_mat: expected an h x w map");
  const torch::Tensor m = map.detach().to(torch::kFloat32).contiguous();
  return cv::Mat(static_cast<int>(m.size(0)), static_cast<int>(m.size(1)), CV_32F, m.data_ptr<float>()).clone();
}

torch::Tensor mat_to_map(const cv::Mat& map) {
  TORCH_CHECK(map.type() == CV_32FC1, "mat_to_map: expected a single-channel float map");
  const cv::Mat m = map.isContinuous() ? map : map.clone();
  return torch::from_blob(const_cast<float*>(m.ptr<float>()), {m.rows, m.cols}, torch::kFloat32).clone();
}

}  // namespace attnvision::datasets
