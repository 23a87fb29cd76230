// Saliency methods against references written apart from the code under test: Grad-CAM, Grad-CAM++ and
// Layer-CAM recomputed per image, per channel and per position in float64 from their papers' formulas (the
// gradients taken image by image); the stage choice by the map resolution it gives; occlusion on a network
// whose score is a known sum of pixels, so the expected map follows from counting; every method of the table
// on a CBAM ResNet and a ViT; and the errors that name a bad method, stage or occlusion window.
#include "anomaly_testing.h"
#include "models/registry.h"
#include "models/saliency/saliency.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace attnvision::models {
namespace {

// A ResNet-10 with basic blocks, 8..64 channels, 5 classes, at 64 x 64: stage strides 2, 4, 8, 16, 32.
ModelCfg tiny_resnet_cfg(const std::string& attn = "none") {
  ModelCfg c;
  c.name = "tiny_resnet";
  c.arch = "resnet";
  c.resnet.block = "basic";
  c.resnet.layers = {1, 1, 1, 1};
  c.resnet.channels = {8, 16, 32, 64};
  c.resnet.attn = attn;
  c.num_classes = 5;
  c.input_size = {3, 64, 64};
  return c;
}

// Random weights from a fixed seed, BatchNorms included (timm's init zeroes each block's last BN scale, which
// would turn every residual branch off), in eval mode.
Network tiny_resnet(const std::string& attn = "none") {
  torch::manual_seed(11);
  Network net = build_model(tiny_resnet_cfg(attn));
  torch::NoGradGuard no_grad;
  for (auto& m : net->modules(/*include_self=*/false)) {
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.normal_(0.0, 0.1);
      bn->running_mean.normal_(0.0, 0.1);
      bn->running_var.uniform_(0.5, 1.5);
    }
  }
  net->eval();
  return net;
}

Network tiny_vit() {
  ModelCfg c;
  c.name = "tiny_vit";
  c.arch = "vit";
  c.vit.img_size = 32;
  c.vit.patch_size = 4;
  c.vit.embed_dim = 32;
  c.vit.depth = 2;
  c.vit.num_heads = 2;
  c.num_classes = 5;
  c.input_size = {3, 32, 32};
  c.mean = c.std = {0.5, 0.5, 0.5};
  torch::manual_seed(5);
  Network net = build_model(c);
  net->eval();
  return net;
}

torch::Tensor random_images(int64_t n, int64_t size) {
  torch::manual_seed(3);
  return torch::randn({n, 3, size, size});
}

// ---- Independent references for the CAM family ----------------------------------------------------------

// One image's activations at `stage` ("" = the last feature map) and the gradient of its class logit with
// respect to them, C x h x w each, in float64: a forward pass and a backward of its own per image.
struct ImageGradient {
  torch::Tensor activations, gradient;
};

ImageGradient image_gradient(NetworkImpl& net, const torch::Tensor& image, int64_t target,
                             const std::string& stage) {
  torch::AutoGradMode grad(true);
  ForwardRequest request;
  request.stages = true;
  const Forward f = net.forward(image.unsqueeze(0), request);
  torch::Tensor a = f.feature_map;
  for (const auto& [name, t] : f.stages)
    if (name == stage) a = t;
  const torch::Tensor g = torch::autograd::grad({f.logits[0][target]}, {a})[0];
  return {a[0].detach().to(torch::kFloat64).contiguous(), g[0].to(torch::kFloat64).contiguous()};
}

using ChannelWeights = std::function<std::vector<double>(const ImageGradient&)>;

// relu(sum_c w_c A_c) with the channel weights `weights_of` gives, by explicit loops.
torch::Tensor weighted_channel_map(const ImageGradient& ig, const ChannelWeights& weights_of) {
  const auto a = ig.activations.accessor<double, 3>();
  const std::vector<double> w = weights_of(ig);
  torch::Tensor map = torch::zeros({ig.activations.size(1), ig.activations.size(2)}, torch::kFloat64);
  auto m = map.accessor<double, 2>();
  for (int64_t i = 0; i < map.size(0); ++i)
    for (int64_t j = 0; j < map.size(1); ++j) {
      double sum = 0;
      for (int64_t c = 0; c < ig.activations.size(0); ++c) sum += w[c] * a[c][i][j];
      m[i][j] = std::max(sum, 0.0);
    }
  return map;
}

// Grad-CAM (Selvaraju et al. 2017, eq. 1): w_c = the spatial mean of dY/dA_c.
std::vector<double> gradcam_weights(const ImageGradient& ig) {
  const auto g = ig.gradient.accessor<double, 3>();
  std::vector<double> w(ig.gradient.size(0), 0.0);
  for (int64_t c = 0; c < ig.gradient.size(0); ++c) {
    for (int64_t i = 0; i < ig.gradient.size(1); ++i)
      for (int64_t j = 0; j < ig.gradient.size(2); ++j) w[c] += g[c][i][j];
    w[c] /= static_cast<double>(ig.gradient.size(1) * ig.gradient.size(2));
  }
  return w;
}

// Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 for S = exp(Y)): alpha_ij = g^2 / (2 g^2 + sum_ab A_ab g^3),
// w_c = sum_ij alpha_ij relu(g_ij); with pytorch-grad-cam's 1e-6 in the denominator and alpha 0 where g is 0.
std::vector<double> gradcam_plus_plus_weights(const ImageGradient& ig) {
  const auto a = ig.activations.accessor<double, 3>();
  const auto g = ig.gradient.accessor<double, 3>();
  std::vector<double> w(ig.gradient.size(0), 0.0);
  for (int64_t c = 0; c < ig.gradient.size(0); ++c) {
    double activation_sum = 0;
    for (int64_t i = 0; i < ig.activations.size(1); ++i)
      for (int64_t j = 0; j < ig.activations.size(2); ++j) activation_sum += a[c][i][j];
    for (int64_t i = 0; i < ig.gradient.size(1); ++i)
      for (int64_t j = 0; j < ig.gradient.size(2); ++j) {
        const double d = g[c][i][j];
        if (d == 0) continue;
        const double alpha = d * d / (2 * d * d + activation_sum * d * d * d + 1e-6);
        w[c] += alpha * std::max(d, 0.0);
      }
  }
  return w;
}

// Layer-CAM (Jiang et al. 2021, eqs. 4-5): relu(sum_c relu(g_c,ij) A_c,ij).
torch::Tensor layercam_map(const ImageGradient& ig) {
  const auto a = ig.activations.accessor<double, 3>();
  const auto g = ig.gradient.accessor<double, 3>();
  torch::Tensor map = torch::zeros({ig.activations.size(1), ig.activations.size(2)}, torch::kFloat64);
  auto m = map.accessor<double, 2>();
  for (int64_t i = 0; i < map.size(0); ++i)
    for (int64_t j = 0; j < map.size(1); ++j) {
      double sum = 0;
      for (int64_t c = 0; c < ig.activations.size(0); ++c) sum += std::max(g[c][i][j], 0.0) * a[c][i][j];
      m[i][j] = std::max(sum, 0.0);
    }
  return map;
}

torch::Tensor reference_map(const std::string& method, const ImageGradient& ig) {
  if (method == "gradcam") return weighted_channel_map(ig, gradcam_weights);
  if (method == "gradcam++") return weighted_channel_map(ig, gradcam_plus_plus_weights);
  return layercam_map(ig);
}

// Max |got - ref| relative to the reference's largest value (raw CAM values have no fixed scale).
double relative_difference(const torch::Tensor& got, const torch::Tensor& ref) {
  const double scale = std::max(ref.abs().max().item<double>(), 1e-12);
  return (got.to(torch::kFloat64) - ref).abs().max().item<double>() / scale;
}

TEST(SaliencyMethods, CamFamilyMatchesIndependentReferences) {
  Network net = tiny_resnet();
  const torch::Tensor x = random_images(2, 64);
  // Each image's top-1 class, named explicitly: a class the image argues against can have an all-zero map.
  const torch::Tensor top1 = net->logits(x).argmax(1);
  const std::vector<int64_t> targets = {top1[0].item<int64_t>(), top1[1].item<int64_t>()};
  for (const std::string method : {"gradcam", "gradcam++", "layercam"}) {
    for (const std::string stage : {"", "layer2", "layer3"}) {
      SCOPED_TRACE(method + " at '" + stage + "'");
      SaliencyOptions options;
      options.stage = stage;
      const SaliencyResult r = explain(*net, x, method, class_score(targets), options);
      ASSERT_EQ(r.raw.dim(), 3);
      for (int64_t n = 0; n < 2; ++n) {
        const torch::Tensor ref = reference_map(method, image_gradient(*net, x[n], targets[n], stage));
        ASSERT_EQ(r.raw[n].sizes(), ref.sizes());
        ASSERT_GT(ref.max().item<double>(), 0.0) << "a reference that says something";
        EXPECT_LE(relative_difference(r.raw[n], ref), 1e-5) << "image " << n;
        const torch::Tensor ref_normalised = (ref - ref.min()) / (ref.max() - ref.min());
        EXPECT_LE((r.maps[n].to(torch::kFloat64) - ref_normalised).abs().max().item<double>(), 1e-5);
      }
      EXPECT_FALSE(r.forward.logits.requires_grad()) << "the forward pass comes back detached";
    }
  }
}

TEST(SaliencyMethods, TheMethodsDisagreeWhereTheirFormulasDo) {
  // Guards the reference test against three methods silently sharing one formula.
  Network net = tiny_resnet();
  const torch::Tensor x = random_images(1, 64);
  SaliencyOptions at_layer2;
  at_layer2.stage = "layer2";
  const auto maps = [&](const std::string& method) {
    return explain(*net, x, method, class_score({2}), at_layer2).maps;
  };
  const torch::Tensor cam = maps("gradcam"), plus = maps("gradcam++"), layer = maps("layercam");
  EXPECT_GT((cam - plus).abs().max().item<double>(), 1e-3);
  EXPECT_GT((cam - layer).abs().max().item<double>(), 1e-3);
  EXPECT_GT((plus - layer).abs().max().item<double>(), 1e-3);
}

// ---- Stage choice -------------------------------------------------------------------------------------

TEST(SaliencyStages, AStageSetsTheMapResolution) {
  Network net = tiny_resnet();
  EXPECT_EQ(saliency_stages(*net),
            (std::vector<std::string>{"act1", "layer1", "layer2", "layer3", "layer4"}));
  const torch::Tensor x = random_images(2, 64);
  struct Case {
    std::string stage;
    int64_t side;  // 64 / stride
  };
  for (const std::string method : {"gradcam", "gradcam++", "layercam"}) {
    for (const Case& c : {Case{"", 2}, Case{"layer4", 2}, Case{"layer3", 4}, Case{"layer2", 8},
                          Case{"layer1", 16}, Case{"act1", 32}}) {
      SCOPED_TRACE(method + " at '" + c.stage + "'");
      SaliencyOptions options;
      options.stage = c.stage;
      const SaliencyResult r = explain(*net, x, method, class_score(), options);
      EXPECT_EQ(r.raw.sizes(), (std::vector<int64_t>{2, c.side, c.side}));
      EXPECT_EQ(r.maps.sizes(), r.raw.sizes());
      EXPECT_EQ(r.forward.logits.sizes(), (std::vector<int64_t>{2, 5}));
    }
    // The last stage's name is the last feature map itself.
    SaliencyOptions last;
    last.stage = "layer4";
    EXPECT_TRUE(torch::equal(explain(*net, x, method, class_score({0}), last).raw,
                             explain(*net, x, method, class_score({0})).raw));
  }
}

TEST(SaliencyStages, APreparedNetworkGivesTheSameStageMaps) {
  // prepare_for_inference folds BatchNorm and moves to channels-last: the stage tensors change layout only.
  Network plain = tiny_resnet(), prepared = tiny_resnet();
  prepared->prepare_for_inference();
  const torch::Tensor x = random_images(2, 64);
  SaliencyOptions at_layer2;
  at_layer2.stage = "layer2";
  for (const std::string method : {"gradcam", "gradcam++", "layercam"}) {
    SCOPED_TRACE(method);
    const torch::Tensor a = explain(*plain, x, method, class_score({4}), at_layer2).raw;
    const torch::Tensor b = explain(*prepared, x, method, class_score({4}), at_layer2).raw;
    EXPECT_LE(relative_difference(b, a.to(torch::kFloat64)), 1e-4);
  }
}

TEST(SaliencyStages, AutogradRecordsOnlyFromTheExplainedStageOn) {
  // What explain() asks of the forward (ForwardRequest::gradient_at): the stage's output is a leaf, nothing
  // before it is recorded, everything after it is; the caller's grad mode is unchanged afterwards.
  for (const bool prepared : {false, true}) {
    SCOPED_TRACE(prepared ? "prepared for inference" : "as built");
    Network net = tiny_resnet();
    if (prepared) net->prepare_for_inference();
    const torch::Tensor x = random_images(2, 64);
    torch::AutoGradMode grad(true);
    ForwardRequest request;
    request.stages = true;
    request.gradient_at = "layer2";
    const Forward f = net->forward(x, request);
    ASSERT_EQ(f.stages.size(), 4u);
    for (const auto& [name, t] : f.stages) {
      SCOPED_TRACE(name);
      const bool is_the_leaf = name == "layer2", after_it = name == "layer3";
      EXPECT_EQ(t.requires_grad(), is_the_leaf || after_it);
      EXPECT_EQ(t.is_leaf(), !after_it);
    }
    EXPECT_TRUE(f.feature_map.requires_grad());
    EXPECT_TRUE(f.logits.requires_grad());
    EXPECT_TRUE(torch::GradMode::is_enabled());
    request.gradient_at = "";
    const Forward at_the_map = net->forward(x, request);
    EXPECT_TRUE(at_the_map.feature_map.is_leaf() && at_the_map.feature_map.requires_grad());
    for (const auto& [name, t] : at_the_map.stages) EXPECT_FALSE(t.requires_grad()) << name;
    EXPECT_TRUE(at_the_map.logits.requires_grad());
    // The head after the leaf has to be recorded, so a caller with grad mode off is told, not given no graph.
    torch::NoGradGuard off;
    EXPECT_THROW(net->forward(x, request), std::logic_error);
    EXPECT_FALSE(torch::GradMode::is_enabled());
  }
}

TEST(SaliencyStages, AViTOffersOnlyItsLastGrid) {
  Network net = tiny_vit();
  EXPECT_EQ(saliency_stages(*net), (std::vector<std::string>{"blocks.1"}));
  const torch::Tensor x = random_images(1, 32);
  // A score read from the grid, as a dense head's is: a class logit comes from the class token alone.
  const ScoreFn grid_score = [](const Forward& f) { return f.feature_map.narrow(2, 0, 3).sum({1, 2, 3}); };
  SaliencyOptions last;
  last.stage = "blocks.1";
  const SaliencyResult r = explain(*net, x, "layercam", grid_score, last);
  EXPECT_EQ(r.raw.sizes(), (std::vector<int64_t>{1, 8, 8}));
  EXPECT_TRUE(torch::equal(r.raw, explain(*net, x, "layercam", grid_score).raw));
  SaliencyOptions inner;
  inner.stage = "blocks.0";
  std::string message;
  try {
    explain(*net, x, "gradcam", grid_score, inner);
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("'blocks.0'"), std::string::npos) << message;
  EXPECT_NE(message.find("blocks.1"), std::string::npos) << message;
}

TEST(SaliencyStages, AClassLogitOfAViTIsRefusedByTheCamMethods) {
  Network net = tiny_vit();
  const torch::Tensor x = random_images(1, 32);
  for (const std::string method : {"gradcam", "gradcam++", "layercam"}) {
    std::string message;
    try {
      explain(*net, x, method, class_score({1}));
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    EXPECT_NE(message.find("'" + method + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("grad-rollout"), std::string::npos) << message;
  }
}

// ---- Occlusion ----------------------------------------------------------------------------------------

// The input itself as the feature map, and no head: a score can read pixels directly.
class PixelsBackboneImpl : public BackboneImpl {
 public:
  Forward forward_features(const torch::Tensor& x, const ForwardRequest&) override {
    Forward f;
    f.feature_map = x;
    return f;
  }
  torch::Tensor pool(const Forward& f) override { return f.feature_map.mean({2, 3}); }
  std::vector<FeatureInfo> feature_info() const override { return {{"pixels", 3, 1}}; }
  int64_t num_features() const override { return 3; }
  std::string classifier_name() const override { return "fc"; }
};

class NoHeadImpl : public HeadImpl {
 public:
  void forward(BackboneImpl&, Forward&, const ForwardRequest&) override {}
};

Network pixel_network() {
  return std::make_shared<NetworkImpl>(std::make_shared<PixelsBackboneImpl>(),
                                       std::make_shared<NoHeadImpl>());
}

struct Region {
  int64_t top, left, height, width;
  bool contains(int64_t i, int64_t j) const {
    return i >= top && i < top + height && j >= left && j < left + width;
  }
};

// Each image's score: the sum of its pixels (all channels) inside its own region, times `sign`.
ScoreFn region_sum(const std::vector<Region>& regions, double sign = 1.0) {
  return [=](const Forward& f) {
    std::vector<torch::Tensor> scores;
    for (size_t n = 0; n < regions.size(); ++n) {
      const Region& r = regions[n];
      scores.push_back(f.feature_map[n].narrow(1, r.top, r.height).narrow(2, r.left, r.width).sum() * sign);
    }
    return torch::stack(scores);
  };
}

// The occlusion map of a constant image `value` whose score sums `region`, counted pixel by pixel: a patch of
// side `patch` at every pair of `offsets` (rows and columns alike) drops the score by value * 3 channels *
// the pixels of the region it hides; each pixel averages the drops of the patches over it.
torch::Tensor counted_occlusion(const Region& region, double value, int64_t patch,
                                const std::vector<int64_t>& offsets) {
  const int64_t size = 64;
  std::vector<double> drops(size * size, 0.0), covers(size * size, 0.0);
  for (int64_t top : offsets)
    for (int64_t left : offsets) {
      double hidden = 0;
      for (int64_t i = top; i < top + patch; ++i)
        for (int64_t j = left; j < left + patch; ++j) hidden += region.contains(i, j) ? 1 : 0;
      for (int64_t i = top; i < top + patch; ++i)
        for (int64_t j = left; j < left + patch; ++j) {
          drops[i * size + j] += value * 3 * hidden;
          covers[i * size + j] += 1;
        }
    }
  torch::Tensor map = torch::zeros({size, size}, torch::kFloat64);
  auto m = map.accessor<double, 2>();
  for (int64_t i = 0; i < size; ++i)
    for (int64_t j = 0; j < size; ++j) m[i][j] = drops[i * size + j] / covers[i * size + j];
  return map;
}

// Two constant images (1 and 2), each scored on a region of its own, aligned to the 8-pixel grid.
const std::vector<Region> kRegions = {{24, 16, 16, 24}, {8, 40, 16, 16}};
torch::Tensor two_constant_images() {
  return torch::stack({torch::ones({3, 64, 64}), torch::full({3, 64, 64}, 2.0)});
}

TEST(SaliencyOcclusion, NonOverlappingPatchesMarkExactlyTheScoredRegion) {
  Network net = pixel_network();
  SaliencyOptions options;
  options.occlusion.patch = options.occlusion.stride = 8;
  const SaliencyResult r = explain(*net, two_constant_images(), "occlusion", region_sum(kRegions), options);
  ASSERT_EQ(r.raw.sizes(), (std::vector<int64_t>{2, 64, 64}));
  for (int64_t n = 0; n < 2; ++n) {
    const torch::Tensor raw_n = r.raw[n], map_n = r.maps[n];
    const auto raw = raw_n.accessor<float, 2>();
    const auto map = map_n.accessor<float, 2>();
    const double drop = (n + 1) * 3 * 64.0;  // a patch inside the region hides 64 pixels of value n + 1
    int64_t wrong = 0;
    for (int64_t i = 0; i < 64; ++i)
      for (int64_t j = 0; j < 64; ++j) {
        const bool inside = kRegions[n].contains(i, j);
        wrong += raw[i][j] != (inside ? drop : 0.0) || map[i][j] != (inside ? 1.f : 0.f);
      }
    EXPECT_EQ(wrong, 0) << "image " << n << ": pixels off the expected map";
  }
}

TEST(SaliencyOcclusion, DefaultWindowMatchesCountedDrops) {
  Network net = pixel_network();
  // Defaults on 64 x 64: patch 64 / 8 = 8, stride 4, so offsets 0, 4, ..., 56.
  std::vector<int64_t> offsets;
  for (int64_t at = 0; at <= 56; at += 4) offsets.push_back(at);
  const SaliencyResult r = explain(*net, two_constant_images(), "occlusion", region_sum(kRegions));
  for (int64_t n = 0; n < 2; ++n) {
    SCOPED_TRACE("image " + std::to_string(n));
    const torch::Tensor expected = counted_occlusion(kRegions[n], n + 1.0, 8, offsets);
    EXPECT_LE((r.raw[n].to(torch::kFloat64) - expected).abs().max().item<double>(), 1e-6);
    // The peak lies over the region, and nothing a patch or more away from it moves.
    const Region& g = kRegions[n];
    const torch::Tensor raw = r.raw[n];
    const torch::Tensor inside = raw.narrow(0, g.top, g.height).narrow(1, g.left, g.width);
    EXPECT_EQ(inside.max().item<float>(), raw.max().item<float>());
    EXPECT_EQ(inside.max().item<float>(), (n + 1) * 3 * 64.f) << "a pixel whose every patch lies inside";
    const int64_t top = std::max<int64_t>(0, g.top - 7), bottom = std::min<int64_t>(64, g.top + g.height + 7);
    const int64_t left = std::max<int64_t>(0, g.left - 7),
                  right = std::min<int64_t>(64, g.left + g.width + 7);
    torch::Tensor far = torch::ones({64, 64}, torch::kBool);
    far.narrow(0, top, bottom - top).narrow(1, left, right - left).fill_(false);
    EXPECT_EQ(raw.masked_select(far).abs().max().item<float>(), 0.f);
  }
}

TEST(SaliencyOcclusion, ChunkingDoesNotChangeTheMap) {
  Network net = pixel_network();
  const torch::Tensor x = two_constant_images();
  const torch::Tensor whole = explain(*net, x, "occlusion", region_sum(kRegions)).raw;
  for (int64_t batch : {1, 2, 7, 1000}) {
    SaliencyOptions options;
    options.occlusion.batch = batch;
    EXPECT_TRUE(torch::equal(explain(*net, x, "occlusion", region_sum(kRegions), options).raw, whole))
        << "batch " << batch;
  }
}

TEST(SaliencyOcclusion, RawDropsKeepTheirSign) {
  // A score that rises when the region is hidden: negative drops in the raw map, [0, 1] once normalised.
  Network net = pixel_network();
  SaliencyOptions options;
  options.occlusion.patch = options.occlusion.stride = 8;
  const SaliencyResult r =
      explain(*net, two_constant_images(), "occlusion", region_sum(kRegions, -1.0), options);
  EXPECT_EQ(r.raw[0].min().item<float>(), -3 * 64.f);
  EXPECT_EQ(r.raw[0].max().item<float>(), 0.f);
  EXPECT_EQ(r.maps.min().item<float>(), 0.f);
  EXPECT_EQ(r.maps.max().item<float>(), 1.f);
}

TEST(SaliencyOcclusion, AStrideThatMissesTheEdgeAddsAPatchFlushWithIt) {
  // Patch 10, stride 7 on 64: offsets 0, 7, ..., 49 leave rows and columns 59..63 uncovered, so a last patch
  // at 54 covers them.
  Network net = pixel_network();
  SaliencyOptions options;
  options.occlusion.patch = 10;
  options.occlusion.stride = 7;
  const SaliencyResult r = explain(*net, two_constant_images(), "occlusion", region_sum(kRegions), options);
  const std::vector<int64_t> offsets = {0, 7, 14, 21, 28, 35, 42, 49, 54};
  for (int64_t n = 0; n < 2; ++n) {
    const torch::Tensor expected = counted_occlusion(kRegions[n], n + 1.0, 10, offsets);
    EXPECT_LE((r.raw[n].to(torch::kFloat64) - expected).abs().max().item<double>(), 1e-5) << "image " << n;
  }
}

TEST(SaliencyOcclusion, PerImageTargetsFollowTheirImages) {
  // Two images with a class each, in passes that split the positions unevenly (7 images = 3 positions of 2
  // images per pass): the same maps as each image alone with its own class.
  Network net = tiny_resnet();
  const torch::Tensor x = random_images(2, 64);
  SaliencyOptions options;
  options.occlusion.patch = 16;
  options.occlusion.batch = 7;
  const torch::Tensor both = explain(*net, x, "occlusion", class_score({2, 4}), options).raw;
  for (int64_t n = 0; n < 2; ++n) {
    const torch::Tensor alone =
        explain(*net, x.narrow(0, n, 1), "occlusion", class_score({2 + 2 * n}), options).raw;
    EXPECT_LE(relative_difference(both[n], alone[0].to(torch::kFloat64)), 1e-5) << "image " << n;
  }
}

// ---- CAM of the anomaly head ----------------------------------------------------------------------------

// The anomaly head's own map, read without a gradient: each cell's p(lesion) at the map's own resolution (here
// the stride-4 neck's), whose maximum is the slice's p(lesion), whatever the score asked for.
TEST(SaliencyCam, IsTheAnomalyHeadsCellProbabilities) {
  const ModelCfg cfg = testing::fine_lesion_map_model(tiny_resnet_cfg("cbam"), 4, 8);
  torch::manual_seed(3);
  Network net = build_model(cfg);
  net->eval();
  const torch::Tensor x = torch::randn({2, 2, 64, 64});
  const SaliencyResult r = explain(*net, x, "cam", class_score({0}));
  torch::NoGradGuard no_grad;
  const Forward f = net->forward(x);
  ASSERT_EQ(r.raw.sizes(), (std::vector<int64_t>{2, 16, 16}));
  EXPECT_TRUE(torch::allclose(r.raw, torch::sigmoid(f.anomaly_map.squeeze(1)), 1e-6, 1e-7));
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_FLOAT_EQ(r.raw[i].max().item<float>(), torch::softmax(f.logits[i], 0)[1].item<float>());
    EXPECT_FLOAT_EQ(r.maps[i].max().item<float>(), 1.0f);
  }
  // Prepared for inference (the neck's BatchNorms folded into its convolutions, as the backbone's): the same
  // maps through the neck with a gradient (Layer-CAM at layer2) and without (CAM), BatchNorm statistics random.
  {
    torch::NoGradGuard no_grad;
    for (auto& m : net->modules(/*include_self=*/false))
      if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
        bn->weight.uniform_(0.5, 1.5);
        bn->bias.normal_(0.0, 0.1);
        bn->running_mean.normal_(0.0, 0.1);
        bn->running_var.uniform_(0.5, 1.5);
      }
  }
  Network prepared = build_model(cfg);
  {
    torch::NoGradGuard no_grad;
    auto theirs = net->named_parameters();
    for (auto& p : prepared->named_parameters()) p.value().copy_(theirs[p.key()]);
    auto their_buffers = net->named_buffers();
    for (auto& b : prepared->named_buffers()) b.value().copy_(their_buffers[b.key()]);
  }
  prepared->prepare_for_inference();
  SaliencyOptions at_layer2;
  at_layer2.stage = "layer2";
  for (const char* method : {"cam", "layercam"}) {
    const SaliencyOptions o = std::string(method) == "cam" ? SaliencyOptions() : at_layer2;
    const torch::Tensor a = explain(*net, x, method, class_score({1}), o).raw;
    const torch::Tensor b = explain(*prepared, x, method, class_score({1}), o).raw;
    EXPECT_LE((a - b).abs().max().item<double>(), 1e-4 * a.abs().max().item<double>()) << method;
  }
  EXPECT_THROW(explain(*net, x, "cam", class_score(), [] {
                 SaliencyOptions o;
                 o.stage = "layer2";
                 return o;
               }()),
               std::invalid_argument);
}

// ---- Every method of the table ------------------------------------------------------------------------

class EveryMethod : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryMethod, SaliencyMapsOrAClearRefusal) {
  const std::string method = GetParam();
  struct Model {
    std::string what;
    Network net;
    int64_t size;
    std::vector<std::string> refusing;  // the methods that do not apply to it (for a class logit)
  };
  // A classifier draws no lesion map, so neither refuses fewer than these.
  const std::vector<std::string> rollouts = {"rollout", "rollout-max", "rollout-min", "grad-rollout", "cam"};
  for (const Model& m : {Model{"cbam resnet", tiny_resnet("cbam"), 64, rollouts},
                         Model{"vit", tiny_vit(), 32, {"cbam", "gradcam", "gradcam++", "layercam", "cam"}}}) {
    SCOPED_TRACE(m.what);
    const torch::Tensor x = random_images(2, m.size);
    SaliencyResult r;
    try {
      r = explain(*m.net, x, method, class_score());
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::find(m.refusing.begin(), m.refusing.end(), method), m.refusing.end()) << e.what();
      continue;
    }
    EXPECT_EQ(std::find(m.refusing.begin(), m.refusing.end(), method), m.refusing.end()) << "not refused";
    ASSERT_EQ(r.maps.dim(), 3);
    EXPECT_EQ(r.maps.size(0), 2);
    EXPECT_EQ(r.raw.sizes(), r.maps.sizes());
    EXPECT_EQ(r.maps.scalar_type(), torch::kFloat32);
    EXPECT_GE(r.maps.min().item<float>(), 0.f);
    EXPECT_LE(r.maps.max().item<float>(), 1.f);
    EXPECT_EQ(r.forward.logits.sizes(), (std::vector<int64_t>{2, 5}));
    EXPECT_FALSE(r.forward.logits.requires_grad());
  }
}

// A network prepared for bf16 (autocast through oneDNN) explains in float32, differentiating through its
// bfloat16 stages and attention probabilities, and lands near the float32 map of the same weights.
TEST_P(EveryMethod, ABf16NetworkGivesFloat32MapsNearTheFp32Ones) {
  const std::string method = GetParam();
  struct Model {
    std::string what;
    Network fp32, bf16;
    int64_t size;
    // Measured: on the ResNet 0.6-0.9% for the gradient and gate maps, 3.6% for occlusion (a difference of two
    // scores); up to 15% on the random ViT, whose attention is nearly uniform, so normalising its almost flat
    // rollout and occlusion maps to [0, 1] magnifies bf16's rounding.
    double tolerance;
  };
  for (Model& m : std::vector<Model>{{"cbam resnet", tiny_resnet("cbam"), tiny_resnet("cbam"), 64, 0.06},
                                     {"vit", tiny_vit(), tiny_vit(), 32, 0.25}}) {
    SCOPED_TRACE(m.what);
    m.fp32->prepare_for_inference();
    m.bf16->prepare_for_inference(Precision::kBFloat16);
    const torch::Tensor x = random_images(2, m.size);
    SaliencyResult a, b;
    try {
      a = explain(*m.fp32, x, method, class_score());
    } catch (const std::invalid_argument&) {
      EXPECT_THROW(explain(*m.bf16, x, method, class_score()), std::invalid_argument);
      continue;
    }
    b = explain(*m.bf16, x, method, class_score());
    EXPECT_EQ(b.maps.scalar_type(), torch::kFloat32);
    EXPECT_EQ(b.forward.logits.scalar_type(), torch::kFloat32);
    const double d = relative_difference(b.maps, a.maps.to(torch::kFloat64));
    std::printf("[ bf16     ] %s %s: max |bf16 - fp32| of the normalised map = %.4f\n", m.what.c_str(), method.c_str(), d);
    EXPECT_LE(d, m.tolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(Saliency, EveryMethod, ::testing::ValuesIn(saliency_methods()),
                         [](const auto& info) {
                           std::string name;
                           for (char c : info.param)
                             name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(SaliencyMethods, HelpHasOneLinePerMethod) {
  const auto methods = saliency_methods(), help = saliency_method_help();
  ASSERT_EQ(help.size(), methods.size());
  for (const std::string name : {"gradcam++", "layercam", "occlusion"}) {
    EXPECT_NE(std::find(methods.begin(), methods.end(), name), methods.end()) << name;
  }
  for (size_t i = 0; i < methods.size(); ++i) EXPECT_EQ(help[i].rfind(methods[i] + ": ", 0), 0u) << help[i];
}

// ---- Errors -------------------------------------------------------------------------------------------

// The std::invalid_argument message `run` throws ("" when it does not throw one).
std::string refusal(const std::function<void()>& run) {
  try {
    run();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(SaliencyErrors, BadNamesAreNamed) {
  Network net = tiny_resnet();
  const torch::Tensor x = random_images(1, 64);
  std::string message = refusal([&] { explain(*net, x, "gradcam+++", class_score()); });
  EXPECT_NE(message.find("'gradcam+++'"), std::string::npos) << message;
  EXPECT_NE(message.find("gradcam++,"), std::string::npos) << "the known methods are listed: " << message;

  SaliencyOptions bad_stage;
  bad_stage.stage = "layer9";
  message = refusal([&] { explain(*net, x, "gradcam++", class_score(), bad_stage); });
  EXPECT_NE(message.find("'layer9'"), std::string::npos) << message;
  EXPECT_NE(message.find("act1, layer1, layer2, layer3, layer4"), std::string::npos) << message;

  SaliencyOptions stage;
  stage.stage = "layer2";
  for (const std::string method : {"occlusion", "cbam", "rollout", "grad-rollout"}) {
    message = refusal([&] { explain(*net, x, method, class_score(), stage); });
    EXPECT_NE(message.find("'" + method + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("'layer2'"), std::string::npos) << message;
    EXPECT_NE(message.find("layercam"), std::string::npos) << "the methods that read a stage: " << message;
  }
}

TEST(SaliencyErrors, OcclusionWindowsThatDoNotFit) {
  Network net = pixel_network();
  const torch::Tensor x = two_constant_images();
  const ScoreFn score = region_sum(kRegions);
  SaliencyOptions too_big;
  too_big.occlusion.patch = 65;
  std::string message = refusal([&] { explain(*net, x, "occlusion", score, too_big); });
  EXPECT_NE(message.find("patch 65"), std::string::npos) << message;
  EXPECT_NE(message.find("64x64"), std::string::npos) << message;
  SaliencyOptions negative_stride;
  negative_stride.occlusion.stride = -2;
  EXPECT_NE(refusal([&] { explain(*net, x, "occlusion", score, negative_stride); }).find("stride"),
            std::string::npos);
  SaliencyOptions no_batch;
  no_batch.occlusion.batch = 0;
  EXPECT_NE(refusal([&] { explain(*net, x, "occlusion", score, no_batch); }).find("batch"),
            std::string::npos);
  // A score with the wrong count of values would broadcast silently.
  message =
      refusal([&] { explain(*net, x, "occlusion", [](const Forward& f) { return f.feature_map.sum(); }); });
  EXPECT_NE(message.find("one per image"), std::string::npos) << message;
}

}  // namespace
}  // namespace attnvision::models
