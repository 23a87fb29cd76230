#include "models/kernels/packed_linear.h"

#include "models/kernels/onednn.h"

#include <torch/torch.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace attnvision::models {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using onednn::cpu_engine;

// The token count the weights are first packed for. oneDNN's brgemm matmul chose the same weight layout for
// every row count tried (1 to 50,000) on the ViT shapes, so one packing serves every batch; should another
// row count ask for another layout, that primitive gets its own reordered copy (Impl::entry).
constexpr int64_t kPackingRows = 256;

}  // namespace

struct PackedLinear::Impl {
  struct Key {
    int64_t rows;
    dt out;
    bool accumulate;
    bool operator<(const Key& o) const {
      return std::tie(rows, out, accumulate) < std::tie(o.rows, o.out, o.accumulate);
    }
  };
  struct Entry {
    dnnl::matmul matmul;
    dnnl::memory weights;  // `packed`, or a copy in the layout this primitive asked for
    size_t scratchpad_bytes;
  };

  int64_t in = 0, out = 0;
  torch::ScalarType dtype = torch::kFloat32;
  LinearEpilogue epilogue = LinearEpilogue::kNone;
  torch::Tensor bias;  // float32, 1 x out; undefined without one
  dnnl::memory packed;
  mutable std::mutex mutex;
  // One primitive per row count and output seen: a batch run sees two row counts (its batch and the last,
  // shorter one), an image of another size one more.
  mutable std::map<Key, Entry> entries;

  dnnl::matmul::primitive_desc describe(const Key& key, const dnnl::memory::desc& weights) const {
    const dnnl::memory::desc src({key.rows, in}, onednn::data_type(dtype), tag::ab);
    const dnnl::memory::desc dst({key.rows, out}, key.out, tag::ab);
    dnnl::post_ops ops;
    if (key.accumulate) ops.append_sum(1.0f);
    if (epilogue == LinearEpilogue::kGelu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // per call, so one primitive may run on two threads
    if (bias.defined()) {
      const dnnl::memory::desc b({1, out}, dt::f32, tag::ab);
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, b, dst), attr, cpu_engine());
    }
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), attr, cpu_engine());
  }

  const Entry& entry(const Key& key) const {
    const std::lock_guard<std::mutex> lock(mutex);
    auto it = entries.find(key);
    if (it != entries.end()) return it->second;
    dnnl::matmul::primitive_desc pd;
    dnnl::memory weights = packed;
    try {
      pd = describe(key, packed.get_desc());
    } catch (const dnnl::error&) {
      // This row count wants another weight layout: a copy reordered into it, for this primitive only.
      const dnnl::memory::desc any({in, out}, onednn::data_type(dtype), tag::any);
      pd = describe(key, any);
      weights = dnnl::memory(pd.weights_desc(), cpu_engine());
      dnnl::memory source = packed;
      dnnl::stream stream(cpu_engine());
      dnnl::reorder(source, weights).execute(stream, source, weights);
      stream.wait();
    }
    Entry e{dnnl::matmul(pd), weights, pd.scratchpad_desc().get_size()};
    return entries.emplace(key, std::move(e)).first->second;
  }

  // x (..., in) as the rows x in matrix the product reads, in the packed dtype; the output's shape in `shape`.
  torch::Tensor rows_of(const torch::Tensor& x, std::vector<int64_t>& shape) const {
    if (x.dim() < 1 || x.size(-1) != in)
      throw std::invalid_argument("packed linear: expects inputs of " + std::to_string(in) + " features");
    shape = x.sizes().vec();
    shape.back() = out;
    return x.to(dtype).reshape({-1, in}).contiguous();
  }

  // y (rows x out, contiguous, of `key.out`) = epilogue(x W^T + b) [+ y when accumulating].
  void run(const torch::Tensor& x, const torch::Tensor& y, bool accumulate) const {
    const Key key{x.size(0), onednn::data_type(y.scalar_type()), accumulate};
    const Entry& e = entry(key);
    const dnnl::engine& engine = cpu_engine();
    const dnnl::memory src({{key.rows, in}, onednn::data_type(dtype), tag::ab}, engine, x.data_ptr());
    const dnnl::memory dst({{key.rows, out}, key.out, tag::ab}, engine, y.data_ptr());
    const onednn::Scratchpad scratchpad(e.scratchpad_bytes);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src},
                                               {DNNL_ARG_WEIGHTS, e.weights},
                                               {DNNL_ARG_DST, dst},
                                               {DNNL_ARG_SCRATCHPAD, scratchpad.memory}};
    if (bias.defined())
      args.emplace(DNNL_ARG_BIAS, dnnl::memory({{1, out}, dt::f32, tag::ab}, engine, bias.data_ptr()));
    dnnl::stream stream(engine);
    e.matmul.execute(stream, args);
    stream.wait();
  }
};

PackedLinear::PackedLinear(const torch::Tensor& weight, const torch::Tensor& bias, torch::ScalarType dtype,
                           LinearEpilogue epilogue)
    : impl_(std::make_unique<Impl>()) {
  if (weight.dim() != 2) throw std::invalid_argument("packed linear: the weight must be out x in");
  torch::NoGradGuard no_grad;
  Impl& m = *impl_;
  m.out = weight.size(0);
  m.in = weight.size(1);
  m.dtype = dtype;
  m.epilogue = epilogue;
  if (bias.defined()) {
    if (bias.numel() != m.out) throw std::invalid_argument("packed linear: the bias must have one value per output");
    m.bias = bias.detach().to(torch::kFloat32).reshape({1, m.out}).contiguous().clone();
  }
  // The weight as torch holds it, out x in row-major, is the in x out matrix the product wants in column-major
  // order (oneDNN's `ba`): reordered from there into the primitive's layout.
  const torch::Tensor w = weight.detach().to(dtype).contiguous();
  const dnnl::engine& engine = cpu_engine();
  dnnl::memory plain({{m.in, m.out}, onednn::data_type(dtype), tag::ba}, engine, w.data_ptr());
  const Impl::Key key{kPackingRows, onednn::data_type(dtype), false};
  const dnnl::matmul::primitive_desc pd =
      m.describe(key, dnnl::memory::desc({m.in, m.out}, onednn::data_type(dtype), tag::any));
  m.packed = dnnl::memory(pd.weights_desc(), engine);
  dnnl::stream stream(engine);
  dnnl::reorder(plain, m.packed).execute(stream, plain, m.packed);
  stream.wait();
}

PackedLinear::~PackedLinear() = default;
PackedLinear::PackedLinear(PackedLinear&&) noexcept = default;
PackedLinear& PackedLinear::operator=(PackedLinear&&) noexcept = default;

torch::Tensor PackedLinear::operator()(const torch::Tensor& x) const { return (*this)(x, impl_->dtype); }

torch::Tensor PackedLinear::operator()(const torch::Tensor& x, torch::ScalarType out_dtype) const {
  const Impl& m = *impl_;
  onednn::data_type(out_dtype);
  std::vector<int64_t> shape;
  const torch::Tensor x2 = m.rows_of(x, shape);
  torch::Tensor y = torch::empty({x2.size(0), m.out}, x2.options().dtype(out_dtype));
  if (x2.size(0) > 0) m.run(x2, y, /*accumulate=*/false);
  return y.view(shape);
}

void PackedLinear::accumulate_into(torch::Tensor& residual, const torch::Tensor& x) const {
  const Impl& m = *impl_;
  if (m.epilogue != LinearEpilogue::kNone)
    throw std::logic_error("packed linear: accumulate_into adds the plain product; this layer has an epilogue");
  std::vector<int64_t> shape;
  const torch::Tensor x2 = m.rows_of(x, shape);
  if (residual.sizes().vec() != shape || !residual.is_contiguous())
    throw std::invalid_argument("packed linear: the residual must be contiguous, of the output's shape");
  onednn::data_type(residual.scalar_type());
  if (x2.size(0) > 0) m.run(x2, residual.view({-1, m.out}), /*accumulate=*/true);
}

}  // namespace attnvision::models
