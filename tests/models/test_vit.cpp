// The Vision Transformer: timm parity on the vit_custom_p4_d64 fixture (both weight formats, fused and
// explicit attention, every intermediate), position-embedding resampling and attention rollout against
// tests/data/vit/make_rollout_ref.py (an independent float64 implementation), the registered sizes'
// parameter counts and FLOPs, and clear errors for inputs a ViT cannot take.
#include "models/saliency/rollout.h"
#include "models/registry.h"
#include "models/runtime.h"
#include "models/backbones/vit.h"
#include "models/weights/weights.h"
#include "parity_util.h"
#include "test_util.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace attnvision::models {
namespace {

using testing::expect_close;

using testing::require_fixture;

const char* kFixture = "vit_custom_p4_d64";

// VisionTransformer(img_size=32, patch_size=4, in_chans=3, num_classes=10, embed_dim=64, depth=2,
// num_heads=2).
ModelCfg fixture_cfg() {
  ModelCfg c;
  c.name = kFixture;
  c.arch = "vit";
  c.vit.img_size = 32;
  c.vit.patch_size = 4;
  c.vit.embed_dim = 64;
  c.vit.depth = 2;
  c.vit.num_heads = 2;
  c.num_classes = 10;
  c.input_size = {3, 32, 32};
  c.mean = c.std = {0.5, 0.5, 0.5};
  return c;
}

std::map<std::string, torch::Tensor> fixture_file(const std::string& name) {
  return read_safetensors((testing::parity_dir() / kFixture / name).string()).tensors;
}

Network fixture_model(const std::string& weights = "weights.safetensors") {
  Network net = build_model(fixture_cfg());
  load_state_dict(*net, read_weights((testing::parity_dir() / kFixture / weights).string()).tensors, weights);
  net->eval();
  return net;
}

std::map<std::string, torch::Tensor> rollout_ref() {
  return read_safetensors(std::string(ATTNVISION_TEST_DATA_DIR) + "/vit/rollout_ref.safetensors").tensors;
}


TEST(VitParity, MatchesTimmWithEveryIntermediate) {
  require_fixture(kFixture);
  if (HasFailure()) return;
  const torch::Tensor input = fixture_file("input.safetensors").at("input");
  const auto expected = fixture_file("expected.safetensors");
  const auto intermediates = fixture_file("intermediates.safetensors");
  for (const char* weights : {"weights.safetensors", "weights.pt"}) {
    SCOPED_TRACE(weights);
    Network net = fixture_model(weights);
    torch::NoGradGuard no_grad;
    const Forward f = net->forward(input, ForwardRequest::asking(/*activations=*/true, /*attention=*/true));
    expect_close(f.logits, expected.at("logits"), "logits");
    expect_close(f.pre_logits, expected.at("features"), "features");
    expect_close(f.tokens, expected.at("tokens"), "tokens");
    // The grid is the patch tokens of the final norm, row-major over (h, w).
    expect_close(f.feature_map,
                 expected.at("tokens").slice(1, 1).reshape({2, 8, 8, 64}).permute({0, 3, 1, 2}),
                 "feature_map");
    testing::expect_intermediates_close(f.activations, intermediates);

    ASSERT_EQ(f.attention.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(f.attention[i].first, "blocks." + std::to_string(i) + ".attn");
      EXPECT_EQ(f.attention[i].second.sizes(), (std::vector<int64_t>{2, 2, 65, 65}));
      EXPECT_TRUE(torch::allclose(f.attention[i].second.sum(-1), torch::ones({2, 2, 65}), 0, 1e-5));
    }

    // The default (fused) path, which keeps the probabilities internal, gives the same outputs.
    const Forward fused = net->forward(input);
    EXPECT_TRUE(fused.attention.empty() && fused.activations.empty());
    expect_close(fused.logits, expected.at("logits"), "fused logits");
    expect_close(fused.tokens, expected.at("tokens"), "fused tokens");

    // Prepared for inference, the blocks' Linear layers run in oneDNN on packed weights and the attention head
    // by head (no gradient recorded): the same outputs within the parity tolerance.
    net->prepare_for_inference();
    {
      torch::InferenceMode inference;
      const Forward packed = net->forward(input);
      expect_close(packed.logits, expected.at("logits"), "packed logits");
      expect_close(packed.tokens, expected.at("tokens"), "packed tokens");
    }
    net->prepare_for_inference(Precision::kBFloat16);
    testing::expect_bf16_logits_close(net->forward(input).logits, expected.at("logits"), std::string(kFixture) + " logits");
  }
}

TEST(VitParity, FusedAndExplicitAttentionTrainAlike) {
  // Training runs the fused path with autograd (no in-place softmax then): same gradients as the explicit
  // one.
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({2, 3, 32, 32});
  std::vector<torch::Tensor> grads;
  for (AttentionPath path : {AttentionPath::kFused, AttentionPath::kExplicit}) {
    torch::manual_seed(0);
    Network net = build_model(fixture_cfg());
    set_attention_path(net->backbone(), path);
    net->forward(x).logits.pow(2).sum().backward();
    grads.push_back(net->named_parameters()["blocks.0.attn.qkv.weight"].grad().clone());
  }
  ASSERT_TRUE(grads[0].defined() && grads[0].abs().max().item<double>() > 0);
  EXPECT_TRUE(torch::allclose(grads[0], grads[1], 1e-4, 1e-7));
  Network resnet = build_model(default_cfg("resnet18"));
  EXPECT_THROW(set_attention_path(resnet->backbone(), AttentionPath::kFused), std::invalid_argument);
}

TEST(VitParity, StateDictOrderAndShapesAreTimms) {
  // The fixture's all_keys_in_order is timm's state_dict order: what weights.pt holds and a re-save writes.
  const std::vector<std::string> timm_order = {"cls_token", "pos_embed", "patch_embed.proj.weight",
                                               "patch_embed.proj.bias"};
  Network net = build_model(fixture_cfg());
  const auto named = net->named_parameters();
  ASSERT_EQ(named.size(), 32u);
  for (size_t i = 0; i < timm_order.size(); ++i) EXPECT_EQ(named.pairs()[i].first, timm_order[i]);
  EXPECT_EQ(named.pairs()[4].first, "blocks.0.norm1.weight");
  EXPECT_EQ(named.pairs()[31].first, "head.bias");
  EXPECT_EQ(named["blocks.1.attn.qkv.weight"].sizes(), (std::vector<int64_t>{192, 64}));
  EXPECT_EQ(named["blocks.1.mlp.fc1.weight"].sizes(), (std::vector<int64_t>{256, 64}));
  EXPECT_EQ(named["pos_embed"].sizes(), (std::vector<int64_t>{1, 65, 64}));
  EXPECT_EQ(count_parameters(*net), 108'106);  // config.json's num_params
  const auto info = net->backbone().feature_info();
  ASSERT_EQ(info.size(), 2u);
  EXPECT_EQ(info[1].module, "blocks.1");
  EXPECT_EQ(info[1].channels, 64);
  EXPECT_EQ(info[1].stride, 4);
}

TEST(Vit, TimmInitialisation) {
  ModelCfg cfg = default_cfg("vit_small_patch16_224");
  torch::manual_seed(0);
  Network net = build_model(cfg);
  auto p = net->named_parameters();
  EXPECT_LT(p["cls_token"].abs().max().item<double>(), 1e-5);
  EXPECT_NEAR(p["pos_embed"].std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(p["blocks.0.attn.qkv.weight"].std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(p["head.weight"].std().item<double>(), 0.02, 0.001);
  EXPECT_EQ(p["blocks.0.mlp.fc1.bias"].abs().max().item<double>(), 0.0);
  EXPECT_EQ(p["head.bias"].abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(p["blocks.5.norm2.weight"], torch::ones({384})));
  EXPECT_TRUE(torch::equal(p["norm.bias"], torch::zeros({384})));
}

TEST(Vit, RegisteredSizesMatchTimmCountsAndPublishedFlops) {
  // Parameter counts: NAMING.md (timm v1.0.28). GMACs: the DeiT paper's Ti/S/B figures, given to 0.1.
  struct Published {
    const char* name;
    int64_t params;
    double gmacs;
  };
  for (const Published& p : {Published{"vit_tiny_patch16_224", 5'717'416, 1.3},
                             Published{"vit_small_patch16_224", 22'050'664, 4.6},
                             Published{"vit_base_patch16_224", 86'567'656, 17.6}}) {
    const ModelCfg cfg = default_cfg(p.name);
    EXPECT_EQ(cfg.interpolation, "bicubic");
    EXPECT_DOUBLE_EQ(cfg.crop_pct, 0.9);
    EXPECT_EQ(cfg.mean, (std::vector<double>{0.5, 0.5, 0.5}));
    Network net = build_model(cfg);
    EXPECT_EQ(count_parameters(*net), p.params) << p.name;
    EXPECT_NEAR(forward_gflops(cfg) / 2, p.gmacs, 0.05) << p.name;
  }
}

TEST(Vit, ResampledPositionEmbeddingIsTimms) {
  const torch::Tensor pos = fixture_file("weights.safetensors").at("pos_embed");
  const auto ref = rollout_ref();
  for (const auto& [h, w] : {std::pair<int64_t, int64_t>{12, 12}, {6, 10}}) {
    for (bool aa : {false, true}) {
      const std::string key =
          "pos_embed_" + std::to_string(h) + "x" + std::to_string(w) + "_aa" + (aa ? "1" : "0");
      const torch::Tensor got = resample_abs_pos_embed(pos, h, w, 8, 8, aa);
      expect_close(got, ref.at(key), key, 1e-5);
      EXPECT_TRUE(torch::equal(got.select(1, 0), pos.select(1, 0))) << "class position kept";
    }
  }
  EXPECT_TRUE(resample_abs_pos_embed(pos, 8, 8, 8, 8, true).is_same(pos));
  EXPECT_THROW(resample_abs_pos_embed(pos, 12, 12, 9, 9, true), std::invalid_argument);
}

TEST(Vit, RunsAtAnotherInputSize) {
  Network net = fixture_model();
  const auto ref = rollout_ref();
  namespace F = torch::nn::functional;
  // The same input the reference script makes: the fixture input bilinearly resized to 48 x 48.
  const torch::Tensor x48 =
      F::interpolate(fixture_file("input.safetensors").at("input"), F::InterpolateFuncOptions()
                                                                        .size(std::vector<int64_t>{48, 48})
                                                                        .mode(torch::kBilinear)
                                                                        .align_corners(false));
  torch::NoGradGuard no_grad;
  const Forward f = net->forward(x48);
  EXPECT_TRUE(torch::isfinite(f.logits).all().item<bool>());
  EXPECT_EQ(f.feature_map.sizes(), (std::vector<int64_t>{2, 64, 12, 12}));
  expect_close(f.logits, ref.at("logits_48"), "logits at 48x48");
  expect_close(f.pre_logits, ref.at("tokens_cls_48"), "class token at 48x48");
  // Non-square inputs work too: a 24 x 40 input is a 6 x 10 grid.
  const Forward g = net->forward(torch::randn({1, 3, 24, 40}), ForwardRequest::asking(/*activations=*/false, /*attention=*/true));
  EXPECT_EQ(g.feature_map.sizes(), (std::vector<int64_t>{1, 64, 6, 10}));
  EXPECT_EQ(g.attention.front().second.sizes(), (std::vector<int64_t>{1, 2, 61, 61}));
}

TEST(Vit, InputsItCannotTakeAreClearErrors) {
  Network net = build_model(fixture_cfg());
  auto message = [&](const torch::Tensor& x) {
    try {
      net->forward(x);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(torch::zeros({1, 3, 30, 32})).find("not a positive multiple of the patch size 4"),
            std::string::npos);
  EXPECT_NE(message(torch::zeros({1, 1, 32, 32})).find("3 input channels"), std::string::npos);
  EXPECT_NE(message(torch::zeros({3, 32, 32})).find("N x C x H x W"), std::string::npos);
  EXPECT_NE(message(torch::zeros({1, 3, 2, 2})).find("patch size"), std::string::npos);
  ModelCfg huge = fixture_cfg();
  huge.vit.img_size = 8192;
  huge.vit.patch_size = 1;
  huge.input_size = {3, 8192, 8192};
  EXPECT_THROW(build_model(huge), std::invalid_argument);
}

TEST(VitRollout, MatchesIndependentImplementation) {
  Network net = fixture_model();
  const torch::Tensor input = fixture_file("input.safetensors").at("input");
  const auto ref = rollout_ref();
  for (const char* fusion : {"mean", "max", "min"}) {
    const torch::Tensor maps = attention_rollout(*net, input, parse_head_fusion(fusion));
    expect_close(maps, ref.at(std::string("rollout_") + fusion), std::string("rollout ") + fusion, 1e-5);
    EXPECT_NEAR(maps.amin({1, 2}).max().item<double>(), 0.0, 1e-7);
    EXPECT_NEAR(maps.amax({1, 2}).min().item<double>(), 1.0, 1e-6);
  }
  const torch::Tensor graded = grad_rollout(*net, input, class_score({3}));
  expect_close(graded, ref.at("grad_rollout_cls3"), "grad rollout class 3", 1e-5);
  // Only the attention probabilities were differentiated: no parameter received a gradient.
  for (const auto& p : net->parameters()) EXPECT_FALSE(p.grad().defined());
  // Per-image classes give the same as one class for all, and it runs under the caller's InferenceMode.
  {
    c10::InferenceMode inference;
    expect_close(grad_rollout(*net, input, class_score({3, 3})), graded, "per-image classes", 1e-6);
  }
  EXPECT_THROW(grad_rollout(*net, input, class_score({10})), std::invalid_argument);
  EXPECT_THROW(grad_rollout(*net, input, class_score({1, 2, 3})), std::invalid_argument);
  EXPECT_THROW(parse_head_fusion("median"), std::invalid_argument);
}

TEST(VitRollout, UpsamplesAndRejectsNonVitAttention) {
  const torch::Tensor maps = torch::rand({2, 8, 8});
  const torch::Tensor up = upsample_map(maps, 32, 48);
  EXPECT_EQ(up.sizes(), (std::vector<int64_t>{2, 32, 48}));
  EXPECT_GE(up.min().item<double>(), maps.min().item<double>() - 1e-6);
  EXPECT_LE(up.max().item<double>(), maps.max().item<double>() + 1e-6);
  EXPECT_THROW(upsample_map(maps, 0, 10), std::invalid_argument);
  // CBAM spatial maps are N x 1 x H x W, not token attention: a clear error, not a wrong map.
  Network cbam = build_model(default_cfg("cbam_resnet18"));
  cbam->eval();
  EXPECT_THROW(attention_rollout(*cbam, torch::randn({1, 3, 64, 64})), std::invalid_argument);
  NamedTensors none;
  EXPECT_THROW(attention_rollout(none, HeadFusion::kMean, 8, 8), std::invalid_argument);
}

// Not a unit test: prints fused vs explicit attention throughput of vit_small_patch16_224 at batch 8, 224 px,
// under two thread plans. Run with
//   build/tests/test_models --gtest_also_run_disabled_tests --gtest_filter='*VitAttentionTiming*'
// (VIT_TIMING_REPS sets the timed forwards per case, default 5).
TEST(VitBenchmark, DISABLED_VitAttentionTiming) {
  const ModelCfg cfg = default_cfg("vit_small_patch16_224");
  torch::manual_seed(0);
  Network net = build_model(cfg);
  net->eval();
  const torch::Tensor x = torch::randn({8, 3, 224, 224});
  const char* env = std::getenv("VIT_TIMING_REPS");
  const int reps = env ? std::max(1, std::atoi(env)) : 5;
  const double gflop = forward_gflops(cfg) * 8;
  c10::InferenceMode inference;
  set_attention_path(net->backbone(), AttentionPath::kExplicit);
  const torch::Tensor explicit_logits = net->forward(x).logits;
  set_attention_path(net->backbone(), AttentionPath::kFused);
  EXPECT_TRUE(torch::allclose(net->forward(x).logits, explicit_logits, 1e-4, 1e-4));
  std::printf("vit_small_patch16_224, batch 8, 224 px, %.2f GFLOP per batch, %d timed forwards per case\n",
              gflop, reps);
  for (const ThreadPlan plan : {ThreadPlan{1, 2}, ThreadPlan{2, 2}}) {
    apply_threads(plan);
    // Interleave the two paths so that load from other processes hits both alike.
    double seconds[2] = {0, 0};
    for (int r = 0; r < reps + 1; ++r) {
      for (int path = 0; path < 2; ++path) {
        set_attention_path(net->backbone(), path == 0 ? AttentionPath::kFused : AttentionPath::kExplicit);
        const auto t0 = std::chrono::steady_clock::now();
        net->forward(x);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (r > 0) seconds[path] += s;  // the first round warms up
      }
    }
    for (int path = 0; path < 2; ++path) {
      const double per_batch = seconds[path] / reps;
      std::printf(
          "torch %d / OpenBLAS %d threads, %-8s attention: %6.1f ms/batch  %6.2f images/s  %6.1f GFLOP/s\n",
          plan.torch_threads, plan.blas_threads, path == 0 ? "fused" : "explicit", per_batch * 1e3,
          8 / per_batch, gflop / per_batch);
    }
  }
}

}  // namespace
}  // namespace attnvision::models
