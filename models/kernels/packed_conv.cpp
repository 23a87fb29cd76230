#include "models/kernels/packed_conv.h"

#include "models/kernels/onednn.h"

#include <torch/torch.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
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

// ATTNVISION_WINOGRAD=0 keeps every convolution direct (for A/B measurements and bit-level comparisons).
bool winograd_allowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("ATTNVISION_WINOGRAD");
    return v == nullptr || std::string(v) != "0";
  }();
  return allowed;
}

// Winograd's kernels cost more to create than the direct one's (once per input shape), which a single image
// does not earn back: a cold-start `caption` of one scene took 1.04-1.39 s with them against 0.96 s without, and
// ResNet-50 at batch 1 gained only 3%.
constexpr int64_t kWinogradMinBatch = 4;

}  // namespace

ConvGeometry geometry_of(const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  if (!pad) throw std::invalid_argument("packed convolution: the convolution's padding must be explicit numbers");
  ConvGeometry g;
  g.stride = {(*o.stride())[0], (*o.stride())[1]};
  g.padding = {(**pad)[0], (**pad)[1]};
  g.dilation = {(*o.dilation())[0], (*o.dilation())[1]};
  g.groups = o.groups();
  return g;
}

struct PackedConv2d::Impl {
  struct Key {
    int64_t n, h, w;
    bool accumulate, relu;
    bool operator<(const Key& o) const {
      return std::tie(n, h, w, accumulate, relu) < std::tie(o.n, o.h, o.w, o.accumulate, o.relu);
    }
  };
  struct Entry {
    dnnl::convolution_forward conv;
    dnnl::memory weights;  // one of `packs`: the layout this primitive asked for
    size_t scratchpad_bytes;
    int64_t out_h, out_w;
    // Winograd runs on oneDNN's blocked layout (nChw16c): the input, and the residual when accumulating, are
    // reordered into it and the output back, each a pass over memory that is small beside the product.
    bool blocked = false;
    dnnl::memory::desc src_nhwc, dst_nhwc, src_blocked, dst_blocked;
  };

  int64_t out = 0, in = 0, kh = 0, kw = 0;
  ConvGeometry geometry;
  torch::ScalarType dtype = torch::kFloat32;
  bool winograd = false;  // try oneDNN's Winograd F(4x4, 3x3) for this convolution (see the constructor)
  torch::Tensor plain;  // the weights as given, in `dtype`, contiguous: the source of every packing
  torch::Tensor bias;   // float32, out; undefined without one
  mutable std::mutex mutex;
  // One primitive per input shape and epilogue seen (a batch run sees two batch sizes); the weights are
  // reordered once per layout the primitives ask for, which on the shapes tried was one.
  mutable std::map<Key, Entry> entries;
  mutable std::vector<dnnl::memory> packs;

  dnnl::memory::dims weight_dims() const {
    const int64_t g = geometry.groups;
    if (g == 1) return {out, in, kh, kw};
    return {g, out / g, in / g, kh, kw};
  }

  int64_t out_size(int64_t size, int axis) const {
    const int64_t k = axis == 0 ? kh : kw;
    return (size + 2 * geometry.padding[axis] - geometry.dilation[axis] * (k - 1) - 1) / geometry.stride[axis] + 1;
  }

  const Entry& entry(const Key& key) const {
    const std::lock_guard<std::mutex> lock(mutex);
    auto it = entries.find(key);
    if (it != entries.end()) return it->second;
    const int64_t oh = out_size(key.h, 0), ow = out_size(key.w, 1);
    if (oh <= 0 || ow <= 0)
      throw std::invalid_argument("packed convolution: a " + std::to_string(key.h) + " x " + std::to_string(key.w) +
                                  " input is smaller than the kernel");
    const dnnl::memory::desc src_nhwc({key.n, in, key.h, key.w}, onednn::data_type(dtype), tag::nhwc);
    const dnnl::memory::desc dst_nhwc({key.n, out, oh, ow}, onednn::data_type(dtype), tag::nhwc);
    const dnnl::memory::desc any_weights(weight_dims(), onednn::data_type(dtype), tag::any);
    const dnnl::memory::dims strides{geometry.stride[0], geometry.stride[1]};
    const dnnl::memory::dims dilates{geometry.dilation[0] - 1, geometry.dilation[1] - 1};  // oneDNN's: 0 is plain
    const dnnl::memory::dims padding{geometry.padding[0], geometry.padding[1]};
    dnnl::post_ops ops;
    if (key.accumulate) ops.append_sum(1.0f);
    if (key.relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // per call, so one primitive may run on two threads
    const auto make = [&](dnnl::algorithm alg, const dnnl::memory::desc& src, const dnnl::memory::desc& dst) {
      const auto prop = dnnl::prop_kind::forward_inference;
      const dnnl::convolution_forward::desc d =
          bias.defined() ? dnnl::convolution_forward::desc(prop, alg, src, any_weights,
                                                           dnnl::memory::desc({out}, dt::f32, tag::x), dst, strides,
                                                           dilates, padding, padding)
                         : dnnl::convolution_forward::desc(prop, alg, src, any_weights, dst, strides, dilates,
                                                           padding, padding);
      return dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
    };
    std::optional<dnnl::convolution_forward::primitive_desc> wino;
    if (winograd && key.n >= kWinogradMinBatch) {
      const dnnl::memory::desc any_src({key.n, in, key.h, key.w}, onednn::data_type(dtype), tag::any);
      const dnnl::memory::desc any_dst({key.n, out, oh, ow}, onednn::data_type(dtype), tag::any);
      try {
        wino.emplace(make(dnnl::algorithm::convolution_winograd, any_src, any_dst));
      } catch (const dnnl::error&) {
        // This CPU or shape has no Winograd kernel (oneDNN's need AVX-512): the direct one serves.
      }
    }
    const dnnl::convolution_forward::primitive_desc pd =
        wino ? *wino : make(dnnl::algorithm::convolution_direct, src_nhwc, dst_nhwc);

    dnnl::memory weights;
    for (const dnnl::memory& p : packs)
      if (p.get_desc() == pd.weights_desc()) weights = p;
    if (!weights) {
      const tag plain_tag = geometry.groups == 1 ? tag::oihw : tag::goihw;
      dnnl::memory source({weight_dims(), onednn::data_type(dtype), plain_tag}, cpu_engine(), plain.data_ptr());
      weights = dnnl::memory(pd.weights_desc(), cpu_engine());
      dnnl::stream stream(cpu_engine());
      dnnl::reorder(source, weights).execute(stream, source, weights);
      stream.wait();
      packs.push_back(weights);
    }
    Entry e{dnnl::convolution_forward(pd), weights, pd.scratchpad_desc().get_size(), oh, ow,
            wino.has_value(), src_nhwc, dst_nhwc, pd.src_desc(), pd.dst_desc()};
    return entries.emplace(key, std::move(e)).first->second;
  }

  // x as the NHWC input the primitive reads: the packed dtype, channels-last.
  torch::Tensor input(const torch::Tensor& x) const {
    if (x.dim() != 4 || x.size(1) != in)
      throw std::invalid_argument("packed convolution: expects N x " + std::to_string(in) + " x H x W inputs");
    return x.to(dtype).contiguous(at::MemoryFormat::ChannelsLast);
  }

  // y (the output's shape, channels-last, `dtype`) = [relu](conv(x) + b [+ y when accumulating]).
  void run(const torch::Tensor& x, const torch::Tensor& y, const Key& key) const {
    const Entry& e = entry(key);
    const dnnl::engine& engine = cpu_engine();
    dnnl::stream stream(engine);
    dnnl::memory src(e.src_nhwc, engine, x.data_ptr()), dst(e.dst_nhwc, engine, y.data_ptr());
    dnnl::memory user_dst = dst;
    torch::Tensor src_storage, dst_storage;  // the blocked copies, from torch's allocator
    if (e.blocked) {
      src_storage = torch::empty({static_cast<int64_t>(e.src_blocked.get_size())}, torch::kUInt8);
      dst_storage = torch::empty({static_cast<int64_t>(e.dst_blocked.get_size())}, torch::kUInt8);
      dnnl::memory src_blocked(e.src_blocked, engine, src_storage.data_ptr());
      dnnl::memory dst_blocked(e.dst_blocked, engine, dst_storage.data_ptr());
      dnnl::reorder(src, src_blocked).execute(stream, src, src_blocked);
      if (key.accumulate) dnnl::reorder(dst, dst_blocked).execute(stream, dst, dst_blocked);
      src = src_blocked;
      dst = dst_blocked;
    }
    const onednn::Scratchpad scratchpad(e.scratchpad_bytes);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src},
                                               {DNNL_ARG_WEIGHTS, e.weights},
                                               {DNNL_ARG_DST, dst},
                                               {DNNL_ARG_SCRATCHPAD, scratchpad.memory}};
    if (bias.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory({{out}, dt::f32, tag::x}, engine, bias.data_ptr()));
    e.conv.execute(stream, args);
    if (e.blocked) dnnl::reorder(dst, user_dst).execute(stream, dst, user_dst);
    stream.wait();
  }
};

PackedConv2d::PackedConv2d(const torch::Tensor& weight, const torch::Tensor& bias, const ConvGeometry& geometry,
                           torch::ScalarType dtype, ConvAlgorithm algorithm)
    : impl_(std::make_unique<Impl>()) {
  if (weight.dim() != 4) throw std::invalid_argument("packed convolution: the weight must be out x in x kh x kw");
  if (geometry.groups < 1 || weight.size(0) % geometry.groups != 0)
    throw std::invalid_argument("packed convolution: the groups must divide the output channels");
  onednn::data_type(dtype);
  torch::NoGradGuard no_grad;
  Impl& m = *impl_;
  m.out = weight.size(0);
  m.in = weight.size(1) * geometry.groups;
  m.kh = weight.size(2);
  m.kw = weight.size(3);
  m.geometry = geometry;
  m.dtype = dtype;
  // Winograd F(4x4, 3x3) does a 3x3 stride-1 convolution in about half the multiplications of the direct one:
  // 1.9x to 2.8x the direct kernel's speed on a ResNet's float32 3x3 layers here, with sums that differ from
  // the direct ones by about 1e-6 of the output's range (tests/models/test_packed_conv.cpp). oneDNN has it for
  // float32 only, on channel counts in blocks of 16.
  m.winograd = algorithm == ConvAlgorithm::kFastest && winograd_allowed() && dtype == torch::kFloat32 &&
               m.kh == 3 && m.kw == 3 && geometry.stride == std::array<int64_t, 2>{1, 1} &&
               geometry.dilation == std::array<int64_t, 2>{1, 1} && geometry.groups == 1 && m.in % 16 == 0 &&
               m.out % 16 == 0;
  m.plain = weight.detach().to(dtype).contiguous().clone();
  if (bias.defined()) {
    if (bias.numel() != m.out)
      throw std::invalid_argument("packed convolution: the bias must have one value per output channel");
    m.bias = bias.detach().to(torch::kFloat32).reshape({m.out}).contiguous().clone();
  }
}

PackedConv2d::~PackedConv2d() = default;
PackedConv2d::PackedConv2d(PackedConv2d&&) noexcept = default;
PackedConv2d& PackedConv2d::operator=(PackedConv2d&&) noexcept = default;

int64_t PackedConv2d::out_channels() const { return impl_->out; }

torch::Tensor PackedConv2d::operator()(const torch::Tensor& x, bool relu) const {
  const Impl& m = *impl_;
  const torch::Tensor src = m.input(x);
  const Impl::Key key{src.size(0), src.size(2), src.size(3), /*accumulate=*/false, relu};
  const int64_t oh = m.out_size(key.h, 0), ow = m.out_size(key.w, 1);
  torch::Tensor y = torch::empty({key.n, m.out, std::max<int64_t>(oh, 0), std::max<int64_t>(ow, 0)},
                                 src.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (key.n > 0) m.run(src, y, key);
  return y;
}

void PackedConv2d::accumulate_into(torch::Tensor& residual, const torch::Tensor& x, bool relu) const {
  const Impl& m = *impl_;
  const torch::Tensor src = m.input(x);
  const Impl::Key key{src.size(0), src.size(2), src.size(3), /*accumulate=*/true, relu};
  const std::vector<int64_t> shape{key.n, m.out, m.out_size(key.h, 0), m.out_size(key.w, 1)};
  if (residual.sizes().vec() != shape || !residual.is_contiguous(at::MemoryFormat::ChannelsLast) ||
      residual.scalar_type() != m.dtype)
    throw std::invalid_argument("packed convolution: the residual must be channels-last, of the output's shape "
                                "and the packed dtype");
  if (key.n > 0) m.run(src, residual, key);
}

}  // namespace attnvision::models
