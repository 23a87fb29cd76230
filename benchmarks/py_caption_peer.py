#!/usr/bin/python3
"""The Python peer of `attnvision caption`: the same captioner (an attnvision checkpoint), the same input and the
same beam search, in plain PyTorch + OpenCV, for one or more images.

    /usr/bin/python3 benchmarks/py_caption_peer.py IMAGE... --weights CKPT.safetensors [--beam 3] [--json]
        [--threads T]

Prints `path<TAB>caption` per image (or, with --json, {path, caption, tokens, logprob} per line), as
`attnvision caption` does, so the two can be compared word for word; what it costs from a cold start is what
benchmarks/caption_cold_start.py measures.

Model: the checkpoint's __metadata__ "attnvision.model_cfg" (models/model_cfg.cpp): the ResNet encoder of
benchmarks/py_train_peer.py (attnvision's names, SE / ECA / CBAM included) without its fc, and Show, Attend and
Tell (models/heads/show_attend_tell.cpp), its mean-pooled baseline or the Transformer decoder
(models/heads/transformer_decoder.cpp: pre-norm blocks, keys and values cached between words), with bottom-up
attention when the config has captioning.detector_classes > 0: the embedded CenterNet detector (a second encoder
of the same shape, models/heads/upsampling_neck.cpp's neck and models/heads/centernet.cpp's branches and peak
decoding) whose detector_tokens strongest peaks become memory tokens after the cells, each read again by the
detector's second stage when captioning.detector_second_stage is on (models/second_stage.h: the crop classifier of
captioning.second_stage_model on py_box_crops.py's square crops, the geometric mean of the two class
probabilities for every peak scoring 0.1 or more), and with captioning.detector_counts each token also reads the
scene's counts (per class the sum over tokens of score x p(class), and that vector weighted by its own class
probabilities); the same parameter names, weights loaded strictly, eval mode, float32. The vocabulary is the
config's labels.
Input (datasets/preprocess.cpp for an image of the model's own size, as the scenes are): RGB, x / 255, then
(x - mean) / std per channel; another size is resized with cv2.INTER_LINEAR (not PIL-exact; the scenes need none).
Beam search (models/heads/caption_decoder.cpp): beam 0 alone is live at the start; <pad> and <start> are never
words; a finished caption continues with <pad> at no cost; the word after max_words is <end>; beams are ranked
at the end by sum log p / length^alpha (length counting <end>).
Needs Debian's python3-torch, python3-numpy, python3-opencv.
"""
import argparse
import json
import math
import os
import sys

import cv2
import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checkpoint_io import load_checkpoint  # noqa: E402
from py_box_crops import square_crops  # noqa: E402
from py_train_peer import ResNet  # noqa: E402

PAD, START, END = 0, 1, 2
SECOND_STAGE_MIN_SCORE = 0.1  # models::kSecondStageMinScore
BOX_POINTS = 4  # a detection token samples the input at BOX_POINTS^2 points of its box


class Encoder(nn.Module):
    """The ResNet encoder's modules at the root, as attnvision's captioners name them; features() is its last map,
    stages() every stage's output (layer1 .. layer4)."""

    def __init__(self, cfg):
        super().__init__()
        encoder = ResNet(dict(cfg, num_classes=1))
        for name in ("conv1", "bn1", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(encoder, name))
        a = cfg["resnet"]
        self.num_features = a["channels"][3] * (4 if a["block"] == "bottleneck" else 1)

    def stages(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        out = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            out.append(x)
        return out

    def features(self, x):
        return self.stages(x)[-1]

    def memory(self, x):
        """What the decoder attends to: here the last feature map (N x C x h x w)."""
        return self.features(x)


# The neck's and branches' units as py_detect_peer.py writes them too; not imported from there, because that module
# loads torchvision, which would add its import to the cold start this peer is timed on.
def conv_bn_relu(cin, cout, kernel):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


def branch(width, outputs):
    return nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, outputs, 1))


class Detector(Encoder):
    """The embedded CenterNet (models/heads/centernet.cpp) on an encoder of the captioner's shape: the last map
    reduced to head_width, brought up 2x at a time (bilinear) to output_stride, adding at each step a 1x1 lateral
    of the stage at that stride, then the heatmap, box size and box offset branches."""

    def __init__(self, cfg):
        super().__init__(cfg)
        d = cfg["detection"]
        width, self.stride = d["head_width"], d["output_stride"]
        channels = [c * (4 if cfg["resnet"]["block"] == "bottleneck" else 1) for c in cfg["resnet"]["channels"]]
        strides = self.stage_strides(cfg)
        self.neck_reduce = conv_bn_relu(channels[3], width, 1)
        self.neck_up = nn.ModuleList()
        self.neck_lateral = nn.ModuleDict()
        self.step_laterals = []
        stride = strides[3]
        while stride > self.stride:
            finer = [i for i in range(4) if strides[i] == stride // 2]
            lateral = f"layer{finer[-1] + 1}" if finer else ""
            if lateral:
                self.neck_lateral[lateral] = conv_bn_relu(channels[finer[-1]], width, 1)
            self.step_laterals.append(lateral)
            self.neck_up.append(conv_bn_relu(width, width, 3))
            stride //= 2
        self.heatmap = branch(width, cfg["num_classes"])
        self.box_size = branch(width, 2)
        self.box_offset = branch(width, 2)

    @staticmethod
    def stage_strides(cfg):
        """layer1 .. layer4's strides: 4, 8, 16, 32, the last stages held at feature_stride (dilated)."""
        return [min(4 * 2 ** i, cfg["resnet"].get("feature_stride", 32)) for i in range(4)]

    def forward(self, x):
        stages = self.stages(x)
        y = self.neck_reduce(stages[3])
        for lateral, up in zip(self.step_laterals, self.neck_up):
            y = nn.functional.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            if lateral:
                y = y + self.neck_lateral[lateral](stages[int(lateral[-1]) - 1])
            y = up(y)
        return self.heatmap(y), self.box_size(y), self.box_offset(y)

    def decode(self, x, k):
        """centernet_decode_with_classes: the k strongest 3x3 peaks over every class, as N x k x 6 rows
        (x, y, w, h, score, class) in input pixels, and each peak's cell's class probabilities (N x k x C); rows of
        zeros pad an input with fewer cells than k."""
        heatmap, size, offset = self.forward(x)
        heat = torch.sigmoid(heatmap)
        n, c, h, w = heat.shape
        peaks = heat * (nn.functional.max_pool2d(heat, 3, 1, 1) == heat)
        scores, flat = peaks.reshape(n, c * h * w).topk(min(k, c * h * w))
        cls = torch.div(flat, h * w, rounding_mode="floor")
        cell = flat.remainder(h * w)

        def gather(t):
            return t.flatten(2).gather(2, cell.unsqueeze(1).expand(-1, t.size(1), -1)).transpose(1, 2)

        size, offset = gather(size), gather(offset)
        s = self.stride
        cx = (cell.remainder(w).float() + offset[:, :, 0]) * s
        cy = (torch.div(cell, w, rounding_mode="floor").float() + offset[:, :, 1]) * s
        half_w, half_h = size[:, :, 0].clamp_min(0) * (s / 2.0), size[:, :, 1].clamp_min(0) * (s / 2.0)
        x0, x1 = (cx - half_w).clamp(0, w * s), (cx + half_w).clamp(0, w * s)
        y0, y1 = (cy - half_h).clamp(0, h * s), (cy + half_h).clamp(0, h * s)
        found = torch.stack([x0, y0, x1 - x0, y1 - y0, scores, cls.float()], 2)
        classes = gather(heat)
        if found.size(1) < k:
            found = torch.cat([found, found.new_zeros(n, k - found.size(1), found.size(2))], 1)
            classes = torch.cat([classes, classes.new_zeros(n, k - classes.size(1), classes.size(2))], 1)
        return found, classes


class Captioner(Encoder):
    """Show, Attend and Tell or its mean-pooled baseline over the encoder's cells."""

    def __init__(self, cfg):
        super().__init__(cfg)
        c = cfg["captioning"]
        features = self.num_features
        v, h = cfg["num_classes"], c["decoder_dim"]
        self.attend = cfg["head"] == "show_attend_tell"
        self.word_embed = nn.Embedding(v, c["word_dim"])
        self.init_h = nn.Linear(features, h)
        self.init_c = nn.Linear(features, h)
        if self.attend:
            self.att_cells = nn.Linear(features, c["attention_dim"])
            self.att_state = nn.Linear(h, c["attention_dim"])
            self.att_score = nn.Linear(c["attention_dim"], 1)
            self.att_gate = nn.Linear(h, features)
        self.lstm = nn.LSTMCell(c["word_dim"] + features, h)
        self.word_out = nn.Linear(h, v)

    def start(self, fmap):
        cells = fmap.flatten(2).transpose(1, 2)
        mean = cells.mean(1)
        return [cells, self.att_cells(cells) if self.attend else mean, self.init_h(mean), self.init_c(mean)]

    def step(self, s, words):
        cells = s[0]
        if self.attend:
            e = self.att_score(torch.tanh(s[1] + self.att_state(s[2]).unsqueeze(1))).squeeze(2)
            alpha = torch.softmax(e, 1)
            context = torch.sigmoid(self.att_gate(s[2])) * (cells * alpha.unsqueeze(2)).sum(1)
        else:
            context = s[1]
        s[2], s[3] = self.lstm(torch.cat([self.word_embed(words), context], 1), (s[2], s[3]))
        return self.word_out(s[2])


class Attention(nn.Module):
    """Multi-head attention with one q and one fused kv projection, as transformer_decoder.cpp's."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def keys_values(self, memory):
        b, m, d = memory.shape
        k, v = self.kv(memory).reshape(b, m, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return k, v

    def attend(self, x, k, v):
        b, l, d = x.shape
        hd = d // self.heads
        q = self.q(x).reshape(b, l, self.heads, hd).transpose(1, 2)
        weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(hd), -1)
        return self.proj(torch.matmul(weights, v).transpose(1, 2).reshape(b, l, d))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def step(self, x, cache):
        """One word's token against the words before it (cache[0:2], grown here) and the cells' (cache[2:4])."""
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)
        cache[0] = torch.cat([cache[0], k], 2)
        cache[1] = torch.cat([cache[1], v], 2)
        x = x + self.self_attn.attend(h, cache[0], cache[1])
        x = x + self.cross_attn.attend(self.norm2(x), cache[2], cache[3])
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm3(x))))


class TransformerCaptioner(Encoder):
    """The Transformer decoder over the encoder's cells: word embeddings plus learned positions, pre-norm blocks
    of self-attention over the words so far and cross-attention to the projected cells (plus learned row and
    column embeddings), a final norm and the word logits."""

    def __init__(self, cfg):
        super().__init__(cfg)
        c = cfg["captioning"]
        d, v = c["decoder_dim"], cfg["num_classes"]
        self.heads = c["decoder_heads"]
        self.word_embed = nn.Embedding(v, d)
        self.word_pos = nn.Parameter(torch.zeros(c["max_words"] + 2, d))
        self.cell_proj = nn.Linear(self.num_features, d)
        self.cell_row = nn.Parameter(torch.zeros(64, d))
        self.cell_col = nn.Parameter(torch.zeros(64, d))
        self.dec_blocks = nn.ModuleList([Block(d, self.heads) for _ in range(c["decoder_layers"])])
        self.dec_norm = nn.LayerNorm(d)
        self.word_out = nn.Linear(d, v)
        self.tokens = c.get("detector_tokens", 0)
        if c.get("detector_classes", 0) > 0:
            self.detector = Detector(dict(cfg, task="detection", num_classes=c["detector_classes"]))
            features = c["detector_classes"] + 5 + cfg["in_chans"] * BOX_POINTS * BOX_POINTS
            self.counts = bool(c.get("detector_counts"))
            if self.counts:
                features += c["detector_classes"] + 1
            self.det_embed = nn.Sequential(nn.Linear(features, d), nn.GELU(), nn.Linear(d, d))
        else:
            self.detector = None
        self.second_stage = None
        if c.get("detector_second_stage"):
            stage = json.loads(c["second_stage_model"])
            self.second_stage = ResNet(stage)
            self.crop_size = stage["input_size"][1]
            # The captioner's normalised pixels -> the classifier's: v * scale + shift per channel (not weights).
            mean, std = torch.tensor(cfg["mean"]), torch.tensor(cfg["std"])
            own_mean, own_std = torch.tensor(stage["mean"]), torch.tensor(stage["std"])
            self.crop_scale = (std / own_std).view(1, -1, 1, 1)
            self.crop_shift = ((mean - own_mean) / own_std).view(1, -1, 1, 1)

    def read_again(self, x, found, classes):
        """The second stage: each peak scoring SECOND_STAGE_MIN_SCORE or more gets the geometric mean of the
        detector's class probabilities and its crop's, and its score that of its own class."""
        n, k = found.shape[:2]
        crops = square_crops(x, found[..., :4], self.crop_size) * self.crop_scale + self.crop_shift
        p = torch.softmax(self.second_stage(crops), 1).view(n, k, -1)
        score = found[..., 4]
        cropped = score >= SECOND_STAGE_MIN_SCORE
        classes = torch.where(cropped.unsqueeze(2), torch.sqrt(classes * p), classes)
        own = p.gather(2, found[..., 5].long().unsqueeze(2)).squeeze(2)
        found = found.clone()
        found[..., 4] = torch.where(cropped, torch.sqrt(score * own), score)
        return found, classes

    def memory(self, x):
        """The cells' tokens (projected, plus row and column embeddings), then with a detector one token per
        detection: an MLP of its class probabilities, score, box (centre, size as fractions of the input) and the
        input's pixels at BOX_POINTS x BOX_POINTS points spread over the box."""
        fmap = self.features(x)
        n, _, h, w = fmap.shape
        where = (self.cell_row[:h].unsqueeze(1) + self.cell_col[:w].unsqueeze(0)).reshape(h * w, -1)
        cells = self.cell_proj(fmap.flatten(2).transpose(1, 2)) + where
        if self.detector is None:
            return cells
        found, classes = self.detector.decode(x, self.tokens)
        if self.second_stage is not None:
            found, classes = self.read_again(x, found, classes)
        k = found.size(1)
        height, width = x.size(2), x.size(3)
        bx, by, bw, bh = found[:, :, 0] / width, found[:, :, 1] / height, found[:, :, 2] / width, found[:, :, 3] / height
        box = torch.stack([bx + bw / 2, by + bh / 2, bw, bh], 2)
        steps = (torch.arange(BOX_POINTS, dtype=torch.float32) + 0.5) / BOX_POINTS
        px = bx[:, :, None, None] + bw[:, :, None, None] * steps.view(1, 1, 1, -1)
        py = by[:, :, None, None] + bh[:, :, None, None] * steps.view(1, 1, -1, 1)
        shape = (n, k, BOX_POINTS, BOX_POINTS)
        grid = torch.stack([px.expand(shape), py.expand(shape)], 4) * 2 - 1
        pixels = nn.functional.grid_sample(x, grid.reshape(n, k * BOX_POINTS * BOX_POINTS, 1, 2), mode="bilinear",
                                           padding_mode="zeros", align_corners=False)
        colours = pixels.reshape(n, x.size(1), k, BOX_POINTS * BOX_POINTS).permute(0, 2, 1, 3).reshape(n, k, -1)
        inputs = [classes, found[:, :, 4:5], box, colours]
        if self.counts:
            per_class = (classes * found[:, :, 4:5]).sum(1, keepdim=True)  # N x 1 x classes
            inputs += [per_class.expand_as(classes), (classes * per_class).sum(2, keepdim=True)]
        tokens = self.det_embed(torch.cat(inputs, 2))
        return torch.cat([cells, tokens], 1)

    def start(self, cells):
        n = cells.size(0)
        state = []
        for block in self.dec_blocks:
            none = cells.new_empty(n, self.heads, 0, cells.size(2) // self.heads)
            state += [none, none, *block.cross_attn.keys_values(cells)]
        return state

    def step(self, s, words):
        t = s[0].size(2)
        x = self.word_embed(words.unsqueeze(1)) + self.word_pos[t:t + 1]
        for i, block in enumerate(self.dec_blocks):
            cache = s[4 * i:4 * i + 4]
            x = block.step(x, cache)
            s[4 * i:4 * i + 4] = cache
        return self.word_out(self.dec_norm(x)).select(1, 0)


def build_captioner(cfg):
    head = cfg.get("head")
    if head in ("show_attend_tell", "mean_lstm"):
        return Captioner(cfg)
    if head == "transformer":
        return TransformerCaptioner(cfg)
    sys.exit(f"py_caption_peer: decoder '{head}' is not written here (show_attend_tell, mean_lstm, transformer)")


def beam_search(model, memory, beam, max_words, alpha):
    n, k, v = memory.size(0), beam, model.word_out.out_features
    state = model.start(memory.repeat_interleave(k, 0))
    words = torch.full((n * k,), START, dtype=torch.long)
    score = torch.zeros(n, k)
    score[:, 1:] = float("-inf")
    finished = torch.zeros(n * k, dtype=torch.bool)
    length = torch.zeros(n * k)
    ids = torch.empty(n * k, 0, dtype=torch.long)
    logprobs = torch.empty(n * k, 0)
    pad_only = torch.full((1, v), float("-inf"))
    pad_only[0, PAD] = 0.0
    never = torch.zeros(1, v)
    never[0, PAD] = never[0, START] = float("-inf")
    base = torch.arange(n).unsqueeze(1) * k
    for t in range(max_words + 1):
        logp = torch.log_softmax(model.step(state, words), 1) + never
        if t == max_words:
            only_end = torch.full_like(logp, float("-inf"))
            only_end[:, END] = logp[:, END]
            logp = only_end
        logp = torch.where(finished.unsqueeze(1), pad_only.expand_as(logp), logp)
        best, index = (score.reshape(n * k, 1) + logp).reshape(n, -1).topk(k, 1)
        origin = (base + torch.div(index, v, rounding_mode="floor")).flatten()
        word = index.remainder(v).flatten()
        state = [s.index_select(0, origin) for s in state]
        was_finished = finished.index_select(0, origin)
        ids = torch.cat([ids.index_select(0, origin), word.unsqueeze(1)], 1)
        logprobs = torch.cat([logprobs.index_select(0, origin), logp.index_select(0, origin).gather(1, word.unsqueeze(1))], 1)
        length = length.index_select(0, origin) + (~was_finished).float()
        finished = was_finished | word.eq(END)
        score, words = best, word
        if bool(finished.all()):
            break
    ranked = score.reshape(n * k) / length.clamp_min(1.0).pow(alpha)
    chosen = base.flatten() + ranked.reshape(n, k).argmax(1)
    return ids.index_select(0, chosen), logprobs.index_select(0, chosen)


def read_input(path, cfg):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: cannot be read as an image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    _, h, w = cfg["input_size"]
    if rgb.shape[:2] != (h, w):
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(cfg["mean"]).view(-1, 1, 1)
    std = torch.tensor(cfg["std"]).view(-1, 1, 1)
    return (x - mean) / std


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--weights", required=True, help="attnvision captioner checkpoint (.safetensors)")
    ap.add_argument("--beam", type=int, default=3)
    ap.add_argument("--max-words", type=int, default=0, help="0: the model's own max_words")
    ap.add_argument("--length-alpha", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    state, cfg = load_checkpoint(args.weights)
    if cfg.get("task") != "captioning":
        sys.exit(f"py_caption_peer: {args.weights}: the model is built for {cfg.get('task')}, not captioning")
    model = build_captioner(cfg)
    model.load_state_dict(state, strict=True)
    model.eval()
    words = cfg["labels"]
    max_words = args.max_words or cfg["captioning"]["max_words"]
    failed = 0
    with torch.inference_mode():
        for path in args.images:
            try:
                x = read_input(path, cfg).unsqueeze(0)
            except ValueError as e:
                print(e, file=sys.stderr)
                failed += 1
                continue
            ids, logprobs = beam_search(model, model.memory(x), args.beam, max_words, args.length_alpha)
            tokens = []
            for i in ids[0].tolist():
                if i in (END, PAD):
                    break
                tokens.append(words[i])
            caption = " ".join(tokens)
            if args.json:
                print(json.dumps({"path": path, "caption": caption, "tokens": tokens,
                                  "logprob": float(logprobs[0].sum())}))
            else:
                print(f"{path}\t{caption}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
