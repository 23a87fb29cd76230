// The caption decoders (models/heads/show_attend_tell.cpp, transformer_decoder.cpp) and what they share
// (caption_decoder.cpp): teacher forcing and incremental decoding compute the same words' probabilities,
// beam search finds the best caption an exhaustive search finds, and the loss ignores padding and adds the
// doubly stochastic regulariser as defined.
#include "models/heads/caption_decoder.h"
#include "models/registry.h"
#include "models/saliency/saliency.h"
#include "models/second_stage.h"
#include "models/weights/weights.h"
#include "crop_classifier_testing.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace attnvision::models {
namespace {

constexpr int64_t kPad = 0, kStart = 1, kEnd = 2;

// A tiny captioner on a tiny ResNet: 32x32 inputs give a 1x1 feature map, 64x64 a 2x2 one. The head
// "transformer+detector" is the Transformer decoder attending also to an embedded detector's 4 strongest peaks
// (3 classes, untrained).
ModelCfg tiny_captioner(const std::string& head, int64_t vocabulary, int64_t side = 64, int64_t max_words = 4) {
  ModelCfg c;
  c.name = "tiny_captioner";
  c.arch = "resnet";
  c.task = "captioning";
  c.head = head;
  if (head == "transformer+detector") {
    c.head = "transformer";
    c.caption.detector_classes = 3;
    c.caption.detector_tokens = 4;
    c.detection.head_width = 8;
  }
  c.resnet.layers = {1, 1, 1, 1};
  c.resnet.channels = {8, 8, 16, 16};
  c.resnet.stem_width = 8;
  c.in_chans = 3;
  c.input_size = {3, side, side};
  c.num_classes = vocabulary;
  c.caption.word_dim = 8;
  c.caption.decoder_dim = 16;
  c.caption.attention_dim = 8;
  c.caption.decoder_layers = 2;
  c.caption.decoder_heads = 2;
  c.caption.max_words = max_words;
  return c;
}

CaptionDecoderImpl& decoder_of(Network& net) { return dynamic_cast<CaptionDecoderImpl&>(net->head()); }

// Teacher-forced log p of each word of `captions` (N x T, <end> then <pad>) given the image.
torch::Tensor teacher_logprobs(Network& net, const torch::Tensor& x, const torch::Tensor& captions) {
  const torch::Tensor start = torch::full({captions.size(0), 1}, kStart, torch::kLong);
  ForwardRequest request;
  request.targets = torch::cat({start, captions}, 1).unsqueeze(1);  // N x 1 x (T + 1)
  const Forward f = net->forward(x, request);
  const torch::Tensor logp = torch::log_softmax(f.word_logits, 2);
  // word_logits covers the columns up to the longest caption; pad the rest (log p 0, as decode writes it).
  const torch::Tensor picked = logp.gather(2, captions.narrow(1, 0, logp.size(1)).unsqueeze(2)).squeeze(2);
  return torch::where(captions.narrow(1, 0, logp.size(1)).eq(kPad), torch::zeros_like(picked), picked);
}

class EveryDecoder : public ::testing::TestWithParam<const char*> {};

TEST_P(EveryDecoder, GreedyWordsAreTheArgmaxOfTeacherForcingOnThemAndTheirLogProbsAgree) {
  torch::manual_seed(3);
  Network net = build_model(tiny_captioner(GetParam(), 12));
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({3, 3, 64, 64});
  const Captions greedy = decoder_of(net).decode(decoder_of(net).encode(net->features(x)), {1, 4, 1.0});
  ASSERT_EQ(greedy.ids.size(0), 3);
  // 2 x 2 cells (and the detector's 4 peaks)
  ASSERT_EQ(greedy.attention.size(2), std::string(GetParam()) == "transformer+detector" ? 8 : 4);
  const torch::Tensor teacher = teacher_logprobs(net, x, greedy.ids);
  EXPECT_TRUE(torch::allclose(teacher, greedy.logprobs.narrow(1, 0, teacher.size(1)), 1e-5, 1e-5))
      << teacher << greedy.logprobs;
  // Each attention row is a distribution over the cells.
  const torch::Tensor words = greedy.ids.ne(kPad);
  EXPECT_TRUE(torch::allclose(greedy.attention.sum(2).masked_select(words), torch::ones({words.sum().item<int64_t>()}), 1e-5));
  // Greedy picks the most likely word at each step (<pad> and <start> are never words), up to max_words: the
  // word after those is <end> whatever it scores.
  const torch::Tensor start = torch::full({3, 1}, kStart, torch::kLong);
  ForwardRequest request;
  request.targets = torch::cat({start, greedy.ids}, 1).unsqueeze(1);
  torch::Tensor logits = net->forward(x, request).word_logits.clone();
  logits.select(2, kPad).fill_(-1e9);
  logits.select(2, kStart).fill_(-1e9);
  const torch::Tensor best = logits.argmax(2);
  const int64_t t = std::min<int64_t>(best.size(1), 4);
  EXPECT_TRUE(torch::equal(best.narrow(1, 0, t).masked_select(words.narrow(1, 0, t)), greedy.ids.narrow(1, 0, t).masked_select(words.narrow(1, 0, t))));
}

// Every caption of up to two words (then <end>) over the vocabulary's words, <end> and <unk>; scored by
// teacher forcing, ranked by sum log p / length^alpha: what beam search must find when its beam holds them all.
TEST_P(EveryDecoder, BeamSearchFindsTheExhaustiveSearchsBestCaption) {
  torch::manual_seed(5);
  const int64_t vocabulary = 7;  // <pad> <start> <end> <unk> and three words
  Network net = build_model(tiny_captioner(GetParam(), vocabulary, 64, /*max_words=*/2));
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 3, 64, 64});
  std::vector<std::vector<int64_t>> candidates = {{kEnd}};
  for (int64_t a = kEnd + 1; a < vocabulary; ++a) {
    candidates.push_back({a, kEnd});
    for (int64_t b = kEnd + 1; b < vocabulary; ++b) candidates.push_back({a, b, kEnd});
  }
  for (double alpha : {0.0, 1.0}) {
    const Captions beam = decoder_of(net).decode(decoder_of(net).encode(net->features(x)), {25, 2, alpha});
    for (int64_t image = 0; image < 2; ++image) {
      double best = -std::numeric_limits<double>::infinity();
      std::vector<int64_t> best_caption;
      for (const std::vector<int64_t>& c : candidates) {
        torch::Tensor ids = torch::full({1, 3}, kPad, torch::kLong);
        for (size_t k = 0; k < c.size(); ++k) ids[0][static_cast<int64_t>(k)] = c[k];
        const double logp = teacher_logprobs(net, x.narrow(0, image, 1), ids).sum().item<double>();
        const double score = logp / std::pow(static_cast<double>(c.size()), alpha);
        if (score > best) best = score, best_caption = c;
      }
      EXPECT_NEAR(beam.score[image].item<double>(), best, 1e-4) << "alpha " << alpha << ", image " << image;
      for (size_t k = 0; k < best_caption.size(); ++k)
        EXPECT_EQ(beam.ids[image][static_cast<int64_t>(k)].item<int64_t>(), best_caption[k]) << "alpha " << alpha;
    }
  }
}

TEST_P(EveryDecoder, ACaptionStillOpenAtMaxWordsIsClosedWithEnd) {
  torch::manual_seed(7);
  Network net = build_model(tiny_captioner(GetParam(), 9, 64, /*max_words=*/3));
  net->eval();
  torch::NoGradGuard no_grad;
  const Captions c = decoder_of(net).decode(decoder_of(net).encode(net->features(torch::randn({4, 3, 64, 64}))), {3, 3, 1.0});
  ASSERT_LE(c.ids.size(1), 4);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(c.ids[i].eq(kEnd).sum().item<int64_t>(), 1) << c.ids[i];
}

// Self-critical training's draws: each word is drawn from the model's next-word distribution (the first
// word's frequencies over many draws match its probabilities), a draw's log-probabilities are teacher
// forcing's on the same words, and they carry a gradient back into the network.
TEST_P(EveryDecoder, SampledCaptionsFollowTheModelsDistributionAndCarryAGradient) {
  torch::manual_seed(11);
  const int64_t vocabulary = 6;
  Network net = build_model(tiny_captioner(GetParam(), vocabulary, 64, /*max_words=*/3));
  net->eval();  // no dropout: the distribution drawn from is the one teacher forcing computes
  const torch::Tensor x = torch::randn({1, 3, 64, 64});
  DecodeOptions draw{1, 3, 1.0, /*sample=*/true};
  const int64_t draws = 4000;
  Captions c;
  {
    torch::NoGradGuard no_grad;
    c = decoder_of(net).decode(decoder_of(net).encode(net->features(x)).repeat_interleave(draws, 0), draw);
  }
  // The first word's probabilities, from teacher forcing on any caption.
  const torch::Tensor first = torch::log_softmax(
      [&] {
        ForwardRequest request;
        request.targets = torch::tensor({kStart, kEnd}, torch::kLong).reshape({1, 1, 2});
        torch::NoGradGuard no_grad;
        return net->forward(x, request).word_logits;
      }()[0][0], 0).exp();
  const torch::Tensor counts = torch::bincount(c.ids.select(1, 0), {}, vocabulary).to(torch::kDouble) / draws;
  EXPECT_EQ(counts[kPad].item<double>(), 0.0);
  EXPECT_EQ(counts[kStart].item<double>(), 0.0);
  // <pad> and <start> are never drawn, so the others' probabilities are renormalised without them.
  const double live = 1.0 - first[kPad].item<double>() - first[kStart].item<double>();
  for (int64_t w = kEnd; w < vocabulary; ++w)  // 4000 draws: a standard error of at most 0.008
    EXPECT_NEAR(counts[w].item<double>(), first[w].item<double>() / live, 0.03) << "word " << w;
  // The draws are not all one caption: sampling, not a disguised argmax.
  EXPECT_GT(std::get<0>(torch::_unique(c.ids.select(1, 0))).size(0), 2);

  {
    torch::NoGradGuard no_grad;
    const torch::Tensor some = c.ids.narrow(0, 0, 8);
    const torch::Tensor teacher = teacher_logprobs(net, x.expand({8, -1, -1, -1}), some);
    // Both are log p under the full softmax: the -inf decode adds to <pad> and <start> only keeps them from
    // being drawn.
    EXPECT_TRUE(torch::allclose(teacher, c.logprobs.narrow(0, 0, 8).narrow(1, 0, teacher.size(1)), 1e-5, 1e-5))
        << teacher << c.logprobs.narrow(0, 0, 8);
  }

  net->train();
  const Captions g = decoder_of(net).decode(decoder_of(net).encode(net->features(x.expand({4, -1, -1, -1}))), draw);
  g.logprobs.sum().backward();
  double gradient = 0;
  for (const torch::Tensor& p : net->parameters())
    if (p.grad().defined()) gradient += p.grad().abs().sum().item<double>();
  EXPECT_GT(gradient, 0.0);
  EXPECT_THROW(decoder_of(net).decode(decoder_of(net).encode(net->features(x)), {2, 3, 1.0, true}), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(Decoders, EveryDecoder,
                         ::testing::Values("show_attend_tell", "transformer", "mean_lstm", "transformer+detector"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '+', '_');
                           return name;
                         });

// Bottom-up attention: the Transformer's memory is the feature map's cells, then one token per detection of
// the embedded detector, which stays frozen (eval mode, no gradient) while the captioner trains and the loss
// reaches the tokens' MLP; the tokens carry the detector's findings (another detector, other tokens).
TEST(BottomUpCaptioner, AttendsToTheCellsThenOneTokenPerDetectionOfAFrozenDetector) {
  torch::manual_seed(5);
  Network net = build_model(tiny_captioner("transformer+detector", 7));
  std::shared_ptr<torch::nn::Module> detector;
  for (const auto& child : net->named_children())
    if (child.key() == "detector") detector = child.value();
  ASSERT_TRUE(detector) << "the detector is registered at the network's root, as a detector checkpoint names it";
  EXPECT_TRUE(net->named_parameters().contains("detector.heatmap.2.weight"));
  net->train();
  EXPECT_TRUE(net->is_training());
  EXPECT_FALSE(detector->is_training()) << "BatchNorm statistics of the frozen detector must not move";
  for (const auto& p : detector->parameters()) EXPECT_FALSE(p.requires_grad());

  const torch::Tensor x = torch::randn({2, 3, 64, 64});
  const Forward f = net->features(x);
  CaptionDecoderImpl& decoder = decoder_of(net);
  const torch::Tensor memory = decoder.encode(f);
  EXPECT_EQ(memory.sizes(), (std::vector<int64_t>{2, 4 + 4, 16})) << "2 x 2 cells, then 4 detections";
  const torch::Tensor boxes = decoder.memory_boxes(f);
  EXPECT_EQ(boxes.sizes(), (std::vector<int64_t>{2, 4, 4}));
  EXPECT_TRUE((boxes.select(2, 2) >= 0).all().item<bool>());
  EXPECT_TRUE((boxes.select(2, 0) + boxes.select(2, 2) <= 64 + 1e-4).all().item<bool>());

  // Teacher forcing's loss reaches the token encoder and the backbone, never the detector.
  ForwardRequest request;
  request.targets = torch::tensor({kStart, int64_t{4}, int64_t{5}, kEnd}, torch::kLong).reshape({1, 1, 4}).repeat({2, 1, 1});
  const Forward trained = net->forward(x, request);
  caption_loss(tiny_captioner("transformer+detector", 7), trained, request.targets, 0.0).backward();
  EXPECT_TRUE(net->named_parameters()["det_embed.0.weight"].grad().defined());
  EXPECT_GT(net->named_parameters()["det_embed.0.weight"].grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(net->named_parameters()["conv1.weight"].grad().abs().sum().item<double>(), 0.0);
  for (const auto& p : detector->parameters()) EXPECT_FALSE(p.grad().defined());

  // Other detector weights: other detections, so other tokens for the cells' same tokens.
  net->eval();
  const torch::Tensor before = decoder.encode(net->features(x));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : detector->parameters()) p.add_(torch::randn_like(p) * 0.5);
  }
  const torch::Tensor after = decoder.encode(net->features(x));
  EXPECT_TRUE(torch::equal(before.narrow(1, 0, 4), after.narrow(1, 0, 4)));
  EXPECT_FALSE(torch::allclose(before.narrow(1, 4, 4), after.narrow(1, 4, 4)));
}

// Prepared for inference (the detector folded and packed too) the captions stay the unprepared network's.
TEST(BottomUpCaptioner, PreparedForInferenceDecodesTheSameCaptions) {
  torch::manual_seed(6);
  Network net = build_model(tiny_captioner("transformer+detector", 9));
  net->eval();
  const torch::Tensor x = torch::randn({3, 3, 64, 64});
  torch::NoGradGuard no_grad;
  const Captions plain = decoder_of(net).decode(decoder_of(net).encode(net->features(x)), {2, 4, 1.0});
  net->prepare_for_inference();
  const Captions prepared = decoder_of(net).decode(decoder_of(net).encode(net->features(x)), {2, 4, 1.0});
  EXPECT_TRUE(torch::equal(plain.ids, prepared.ids));
  EXPECT_TRUE(torch::allclose(plain.logprobs, prepared.logprobs, 1e-4, 1e-4));
}

TEST(BottomUpCaptioner, OnlyTheTransformerDecoderTakesADetector) {
  ModelCfg c = tiny_captioner("transformer+detector", 6);
  EXPECT_NO_THROW(c.validate());
  c.head = "show_attend_tell";
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c = tiny_captioner("transformer+detector", 6);
  c.caption.detector_tokens = 0;
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c = tiny_captioner("transformer+detector", 6);
  c.detection.output_stride = 3;  // the embedded detector's settings are validated as a detector's
  EXPECT_THROW(c.validate(), std::invalid_argument);
  // The checkpoint's cfg carries the detector's settings, and reads back the same.
  c = tiny_captioner("transformer+detector", 6);
  const ModelCfg back = cfg_from_json(to_json(c));
  EXPECT_EQ(to_json(back), to_json(c));
  EXPECT_EQ(to_json(c).at("detection").at("head_width"), 8);
  EXPECT_FALSE(to_json(tiny_captioner("transformer", 6)).contains("detection"));
}

// A crop classifier of tiny_captioner's 3 detector classes, as the detector's second stage.
ModelCfg tiny_crop_classifier() {
  return testing::tiny_crop_classifier(3, {}, {0.5, 0.4, 0.3}, {0.2, 0.25, 0.3});
}

ModelCfg with_second_stage(ModelCfg c) {
  c.caption.detector_second_stage = true;
  c.caption.second_stage_model = to_json(tiny_crop_classifier()).dump();
  return c;
}

// The detector's second stage (models/second_stage.h), embedded frozen as the module `second_stage`: every
// detection scoring at least kSecondStageMinScore gets the geometric mean of the detector's class
// probabilities and its crop's, and the score of its own class likewise; weaker ones, boxes and pixels stay.
TEST(BottomUpCaptioner, ReadsEachDetectionAgainThroughItsDetectorsSecondStage) {
  torch::manual_seed(7);
  Network plain = build_model(tiny_captioner("transformer+detector", 7));
  Network staged = build_model(with_second_stage(tiny_captioner("transformer+detector", 7)));
  std::map<std::string, torch::Tensor> same;
  for (const auto& item : plain->named_parameters()) same[item.key()] = item.value();
  for (const auto& item : plain->named_buffers()) same[item.key()] = item.value();
  const std::vector<std::string> own = load_state_dict(*staged, same, "plain", ExtraKeys::kError, MissingKeys::kKeep);
  ASSERT_FALSE(own.empty());
  for (const std::string& name : own) EXPECT_EQ(name.rfind("second_stage.", 0), 0u) << name;
  // A classifier whose logits are its fc bias alone: p(class | crop) = softmax(bias) for every crop.
  const torch::Tensor bias = torch::tensor({0.0f, 2.0f, -1.0f});
  {
    torch::NoGradGuard no_grad;
    auto params = staged->named_parameters();
    params["second_stage.fc.weight"].zero_();
    params["second_stage.fc.bias"].copy_(bias);
  }
  std::shared_ptr<torch::nn::Module> stage;
  for (const auto& child : staged->named_children())
    if (child.key() == "second_stage") stage = child.value();
  ASSERT_TRUE(stage);
  staged->train();
  EXPECT_FALSE(stage->is_training());
  for (const auto& p : stage->parameters()) EXPECT_FALSE(p.requires_grad());

  plain->eval();
  staged->eval();
  const torch::Tensor x = torch::randn({2, 3, 64, 64});
  // Shift the detector's heatmap logits (the same peaks, in the same order) so that the first image's strongest
  // peak scores above kSecondStageMinScore and its weakest below: both cases, whatever the random weights.
  {
    const torch::Tensor score = decoder_of(plain).detection_features(plain->features(x)).select(2, 3)[0];
    const auto logit = [](const torch::Tensor& p) { return torch::log(p / (1 - p)); };
    const double shift = std::log(kSecondStageMinScore / (1 - kSecondStageMinScore)) -
                         0.5 * (logit(score.max()) + logit(score.min())).item<double>();
    ASSERT_GT(score.max().item<double>(), score.min().item<double>());
    torch::NoGradGuard no_grad;
    for (Network* net : {&plain, &staged}) (*net)->named_parameters()["detector.heatmap.2.bias"].add_(shift);
  }
  const torch::Tensor before = decoder_of(plain).detection_features(plain->features(x));
  const torch::Tensor after = decoder_of(staged).detection_features(staged->features(x));
  ASSERT_EQ(before.sizes(), after.sizes());
  ASSERT_EQ(before.size(2), 3 + 5 + 3 * 16);
  const torch::Tensor classes = before.narrow(2, 0, 3), score = before.select(2, 3);
  const torch::Tensor cropped = score >= kSecondStageMinScore;
  ASSERT_TRUE(cropped.any().item<bool>());
  ASSERT_FALSE(cropped.all().item<bool>()) << "the case of a detection too weak to crop";
  const torch::Tensor p = torch::softmax(bias, 0);
  EXPECT_TRUE(torch::allclose(after.narrow(2, 0, 3),
                              torch::where(cropped.unsqueeze(2), torch::sqrt(classes * p), classes), 1e-5, 1e-6));
  // A detection is one class's peak: its score is that class's probability.
  const torch::Tensor own_class = (classes - score.unsqueeze(2)).abs().argmin(2);
  const torch::Tensor own_p = p.index_select(0, own_class.flatten()).view_as(score);
  EXPECT_TRUE(torch::allclose(after.select(2, 3), torch::where(cropped, torch::sqrt(score * own_p), score), 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(after.narrow(2, 4, after.size(2) - 4), before.narrow(2, 4, before.size(2) - 4)));
}

TEST(BottomUpCaptioner, ASecondStageNeedsADetectorAndAClassifierOfItsClasses) {
  EXPECT_NO_THROW(with_second_stage(tiny_captioner("transformer+detector", 6)).validate());
  ModelCfg c = with_second_stage(tiny_captioner("transformer", 6));
  EXPECT_THROW(c.validate(), std::invalid_argument) << "no detector to read again";
  c = tiny_captioner("transformer+detector", 6);
  c.caption.second_stage_model = to_json(tiny_crop_classifier()).dump();
  EXPECT_THROW(c.validate(), std::invalid_argument) << "a classifier without detector_second_stage";
  ModelCfg other = tiny_crop_classifier();
  other.num_classes = 4;
  c = tiny_captioner("transformer+detector", 6);
  c.caption.detector_second_stage = true;
  c.caption.second_stage_model = to_json(other).dump();
  EXPECT_THROW(c.validate(), std::invalid_argument) << "other classes than the detector's";
  // On, with the classifier not filled in yet (the trainer fills it from init_detector): valid, but a network
  // cannot be built without it.
  c.caption.second_stage_model.clear();
  EXPECT_NO_THROW(c.validate());
  try {
    build_model(c);
    ADD_FAILURE() << "built without its second stage's config";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("init_detector"), std::string::npos) << e.what();
  }
  // The captioner's checkpoint cfg carries the classifier's, and reads back the same.
  c = with_second_stage(tiny_captioner("transformer+detector", 6));
  EXPECT_EQ(to_json(cfg_from_json(to_json(c))), to_json(c));
  EXPECT_EQ(to_json(c.embedded_second_stage()), to_json(tiny_crop_classifier()));
}

// caption.detector_counts: each detection token also reads the scene's expected count per class (score x class
// probability summed over the tokens) and the expected number sharing its own class; the rest is unchanged.
TEST(BottomUpCaptioner, DetectionTokensReadTheScenesCountsPerClassAndOfTheirOwn) {
  ModelCfg counted_cfg = tiny_captioner("transformer+detector", 7);
  counted_cfg.caption.detector_counts = true;
  torch::manual_seed(8);
  Network plain = build_model(tiny_captioner("transformer+detector", 7));
  torch::manual_seed(8);
  Network counted = build_model(counted_cfg);
  plain->eval();
  counted->eval();
  const torch::Tensor x = torch::randn({2, 3, 64, 64});
  torch::NoGradGuard no_grad;
  const torch::Tensor before = decoder_of(plain).detection_features(plain->features(x));
  const torch::Tensor after = decoder_of(counted).detection_features(counted->features(x));
  const int64_t classes = 3, base = classes + 5 + 3 * 16;
  ASSERT_EQ(before.size(2), base);
  ASSERT_EQ(after.size(2), base + classes + 1);
  EXPECT_TRUE(torch::equal(after.narrow(2, 0, base), before));
  const auto f = before.accessor<float, 3>();
  const auto counts = after.accessor<float, 3>();
  for (int64_t n = 0; n < before.size(0); ++n) {
    std::vector<double> per_class(classes, 0.0);
    for (int64_t k = 0; k < before.size(1); ++k)
      for (int64_t c = 0; c < classes; ++c) per_class[c] += f[n][k][classes] * f[n][k][c];
    for (int64_t k = 0; k < before.size(1); ++k) {
      double own = 0;
      for (int64_t c = 0; c < classes; ++c) {
        EXPECT_NEAR(counts[n][k][base + c], per_class[c], 1e-5) << n << " " << k << " " << c;
        own += f[n][k][c] * per_class[c];
      }
      EXPECT_NEAR(counts[n][k][base + classes], own, 1e-5) << n << " " << k;
    }
  }
  // The token MLP reads the wider input; everything else is the plain captioner's.
  EXPECT_EQ(counted->named_parameters()["det_embed.0.weight"].size(1), base + classes + 1);
  EXPECT_EQ(count_parameters(*counted) - count_parameters(*plain), (classes + 1) * counted_cfg.caption.decoder_dim);
  counted_cfg.caption.detector_classes = 0;
  EXPECT_THROW(counted_cfg.validate(), std::invalid_argument) << "counts without a detector";
}

TEST(CaptionLoss, PaddingAndMissingReferencesChangeNothing) {
  torch::manual_seed(11);
  const ModelCfg cfg = tiny_captioner("show_attend_tell", 10);
  Network net = build_model(cfg);
  net->eval();  // no dropout: the two passes see the same network
  const torch::Tensor x = torch::randn({2, 3, 64, 64});
  const torch::Tensor refs = torch::tensor({1, 4, 5, 2, 0, 1, 6, 2, 0, 0, 1, 7, 8, 9, 2, 1, 5, 2, 0, 0}, torch::kLong).reshape({2, 2, 5});
  // One more all-padding reference per image, and two more padding columns.
  torch::Tensor padded = torch::zeros({2, 3, 7}, torch::kLong);
  padded.narrow(1, 0, 2).narrow(2, 0, 5).copy_(refs);
  auto loss_of = [&](const torch::Tensor& r) {
    ForwardRequest request;
    request.targets = r;
    return caption_loss(cfg, net->forward(x, request), r, 0.0).item<double>();
  };
  EXPECT_NEAR(loss_of(refs), loss_of(padded), 1e-6);
}

TEST(CaptionLoss, IsWordCrossEntropyPlusTheDoublyStochasticRegulariser) {
  ModelCfg cfg = tiny_captioner("show_attend_tell", 5);
  cfg.caption.attention_reg = 0.5;
  // One image, one reference "<start> w <end>": two next words (w = 4, then <end>), three cells.
  const torch::Tensor refs = torch::tensor({1, 4, 2}, torch::kLong).reshape({1, 1, 3});
  Forward f;
  f.word_logits = torch::zeros({1, 2, 5});
  f.word_logits[0][0][4] = std::log(3.0);  // p(w) = 3 / 7
  f.word_alphas = torch::tensor({0.5f, 0.25f, 0.25f, 0.1f, 0.1f, 0.8f}).reshape({1, 2, 3});
  const double ce = -(std::log(3.0 / 7.0) + std::log(1.0 / 5.0)) / 2;
  // Cells saw 0.6, 0.35 and 1.05 over the caption: (0.4^2 + 0.65^2 + 0.05^2) / 3.
  const double reg = (0.16 + 0.4225 + 0.0025) / 3;
  EXPECT_NEAR(caption_loss(cfg, f, refs, 0.0).item<double>(), ce + 0.5 * reg, 1e-6);
  f.word_alphas = torch::Tensor();  // a decoder without the regulariser
  EXPECT_NEAR(caption_loss(cfg, f, refs, 0.0).item<double>(), ce, 1e-6);
}

// Saliency explains a word: Layer-CAM of one word's log-probability in the greedy caption is a map over the
// encoder's last stage, and explaining another word gives another map.
TEST(CaptionDecoders, LayerCamExplainsAWordOfTheGreedyCaption) {
  torch::manual_seed(13);
  Network net = build_model(tiny_captioner("show_attend_tell", 12, 128));
  net->eval();
  const torch::Tensor x = torch::randn({2, 3, 128, 128});
  auto word = [](int64_t t) {
    return ScoreFn([t](const Forward& f) { return f.caption_logprobs.select(1, t); });
  };
  const SaliencyResult first = explain(*net, x, "layercam", word(0));
  const SaliencyResult second = explain(*net, x, "layercam", word(1));
  ASSERT_EQ(first.raw.sizes(), (std::vector<int64_t>{2, 4, 4}));
  EXPECT_GT(first.raw.sum().item<double>(), 0.0);
  EXPECT_FALSE(torch::allclose(first.raw, second.raw));
  EXPECT_TRUE(first.forward.caption_ids.defined());
}

TEST(CaptionDecoders, AreChosenByHeadAndAnUnknownOneIsNamed) {
  EXPECT_NO_THROW(build_model(tiny_captioner("transformer", 6)));
  try {
    build_model(tiny_captioner("gru", 6));
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no head 'gru' serves task 'captioning'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("show_attend_tell"), std::string::npos) << e.what();
  }
  ModelCfg tiny = tiny_captioner("show_attend_tell", 4);  // the specials only
  EXPECT_THROW(tiny.validate(), std::invalid_argument);
}

}  // namespace
}  // namespace attnvision::models
