#include "models/kernels/head_attention.h"

#include "models/kernels/onednn.h"

#include <ATen/Parallel.h>
#include <ATen/ops/_softmax.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

namespace attnvision::models {
namespace {

using dt = dnnl::memory::data_type;
using onednn::cpu_engine;

// The two products of one (image, head) pair for a token count, head width and model width. Their memory
// descriptors carry the strides of the qkv output (a row of 3 * width) and of the heads' output (a row of
// width), so that one primitive pair serves every head at its own offset.
struct HeadProducts {
  dnnl::matmul scores;   // T x head_dim times (T x head_dim)^T, scaled
  dnnl::matmul weighted;  // T x T times T x head_dim
  dnnl::memory::desc q, k_t, s, v, out;
  size_t scratchpad_bytes;
};

const HeadProducts& head_products(int64_t tokens, int64_t head_dim, int64_t width, float scale) {
  static std::mutex mutex;
  static std::map<std::tuple<int64_t, int64_t, int64_t, float>, HeadProducts> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(tokens, head_dim, width, scale);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const int64_t row = 3 * width;
  HeadProducts p;
  p.q = dnnl::memory::desc({tokens, head_dim}, dt::f32, dnnl::memory::dims{row, 1});
  p.k_t = dnnl::memory::desc({head_dim, tokens}, dt::f32, dnnl::memory::dims{1, row});
  p.s = dnnl::memory::desc({tokens, tokens}, dt::f32, dnnl::memory::format_tag::ab);
  p.v = dnnl::memory::desc({tokens, head_dim}, dt::f32, dnnl::memory::dims{row, 1});
  p.out = dnnl::memory::desc({tokens, head_dim}, dt::f32, dnnl::memory::dims{width, 1});
  dnnl::primitive_attr scaled, plain;
  scaled.set_output_scales(0, {scale});
  // Scratchpads come from the caller, so that two threads may run the same primitive at once.
  scaled.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  plain.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const dnnl::matmul::primitive_desc scores_pd(dnnl::matmul::desc(p.q, p.k_t, p.s), scaled, cpu_engine());
  const dnnl::matmul::primitive_desc weighted_pd(dnnl::matmul::desc(p.s, p.v, p.out), plain, cpu_engine());
  p.scores = dnnl::matmul(scores_pd);
  p.weighted = dnnl::matmul(weighted_pd);
  p.scratchpad_bytes = std::max(scores_pd.scratchpad_desc().get_size(), weighted_pd.scratchpad_desc().get_size());
  return cache.emplace(key, std::move(p)).first->second;
}

}  // namespace

torch::Tensor attend_heads(const torch::Tensor& qkv, int64_t heads, double scale) {
  if (qkv.dim() != 3 || qkv.scalar_type() != torch::kFloat32 || !qkv.is_contiguous() || heads < 1 ||
      qkv.size(2) % (3 * heads) != 0)
    throw std::invalid_argument("attend_heads: expects a contiguous float32 N x T x (3 * heads * head_dim) tensor");
  const int64_t n = qkv.size(0), tokens = qkv.size(1), width = qkv.size(2) / 3, head_dim = width / heads;
  torch::Tensor out = torch::empty({n, tokens, width}, qkv.options());
  if (n == 0 || tokens == 0) return out;
  const HeadProducts& p = head_products(tokens, head_dim, width, static_cast<float>(scale));
  float* const qkv_data = qkv.data_ptr<float>();
  float* const out_data = out.data_ptr<float>();
  at::parallel_for(0, n * heads, 1, [&](int64_t begin, int64_t end) {
    // Inside torch's parallel region oneDNN runs each primitive on this thread alone.
    const dnnl::engine& engine = cpu_engine();
    dnnl::stream stream(engine);
    torch::Tensor scores = torch::empty({tokens, tokens}, qkv.options());
    const onednn::Scratchpad scratchpad(p.scratchpad_bytes);
    const dnnl::memory s(p.s, engine, scores.data_ptr());
    for (int64_t i = begin; i < end; ++i) {
      const int64_t image = i / heads, head = i % heads;
      float* const base = qkv_data + image * tokens * 3 * width + head * head_dim;
      const dnnl::memory q(p.q, engine, base), k_t(p.k_t, engine, base + width), v(p.v, engine, base + 2 * width);
      const dnnl::memory o(p.out, engine, out_data + image * tokens * width + head * head_dim);
      p.scores.execute(stream, {{DNNL_ARG_SRC, q}, {DNNL_ARG_WEIGHTS, k_t}, {DNNL_ARG_DST, s},
                                {DNNL_ARG_SCRATCHPAD, scratchpad.memory}});
      stream.wait();
      at::_softmax_out(scores, scores, -1, /*half_to_float=*/false);
      p.weighted.execute(stream, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, o},
                                  {DNNL_ARG_SCRATCHPAD, scratchpad.memory}});
      stream.wait();
    }
  });
  return out;
}

}  // namespace attnvision::models
