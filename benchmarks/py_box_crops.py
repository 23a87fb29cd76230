"""models/box_crops.cpp in PyTorch, for the Python peers that cut a detection's crops (a detector's second
stage): py_detect_peer.py and py_caption_peer.py. Needs Debian's python3-torch alone."""
import torch
import torch.nn.functional as F


def square_crops(images, boxes, size, margin=1.15):
    """models::square_crops for every row of boxes (N x k x 4) of images (N x C x H x W): N*k x C x size x size."""
    n, k = boxes.shape[:2]
    _, _, h, w = images.shape
    side = boxes[..., 2:4].amax(-1) * margin
    cx, cy = boxes[..., 0] + boxes[..., 2] / 2, boxes[..., 1] + boxes[..., 3] / 2
    steps = (torch.arange(2 * size, dtype=torch.float32) + 0.5) / (2 * size) - 0.5  # sample centres, side units
    xs = cx.unsqueeze(-1) + side.unsqueeze(-1) * steps  # N x k x 2size, in pixels
    ys = cy.unsqueeze(-1) + side.unsqueeze(-1) * steps
    grid = torch.stack([(2 * xs / w - 1).unsqueeze(-2).expand(-1, -1, 2 * size, -1),
                        (2 * ys / h - 1).unsqueeze(-1).expand(-1, -1, -1, 2 * size)], -1)
    source = images.unsqueeze(1).expand(-1, k, -1, -1, -1).reshape(n * k, *images.shape[1:])
    sampled = F.grid_sample(source, grid.view(n * k, 2 * size, 2 * size, 2), mode="bilinear",
                            padding_mode="border", align_corners=False)
    return F.avg_pool2d(sampled, 2)
