#!/usr/bin/env python3
"""The Python peer (../shared/peers/py_classify_folder.py) at its best for CNNs: the same program, with its model
and every input batch in channels-last memory format, as PyTorch's CPU performance guide advises for
convolutional networks. Usage: peer_channels_last.py PEER.py [the peer's own arguments].
"""
import importlib.util
import sys

import torch


class ChannelsLast(torch.nn.Module):
    """The peer's model, fed channels-last batches (its preprocessing builds NCHW-contiguous ones)."""

    def __init__(self, model):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x):
        return self.model(x.contiguous(memory_format=torch.channels_last))


def main():
    peer_path = sys.argv[1]
    spec = importlib.util.spec_from_file_location("py_classify_folder", peer_path)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    build = peer.build_model

    def build_channels_last(args):
        model, mean, std, name = build(args)
        return ChannelsLast(model).eval(), mean, std, name

    peer.build_model = build_channels_last
    sys.argv = [peer_path] + sys.argv[2:]
    peer.main()


if __name__ == "__main__":
    main()
