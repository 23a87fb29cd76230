// IDX files, the format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a 4-byte magic
// (0, 0, type, number of dims), the dims as big-endian uint32, then the data in row-major order. Read
// gzip-compressed (recognised by its 1f 8b magic, not by the name) or raw.
//
// The file is untrusted: the header is checked before anything is allocated, the declared size is
// bounded (at most 2^31 elements, and no more than the file can hold: its size when raw, 1032 times it
// when compressed, deflate's largest ratio), and the data is inflated straight into the tensor sized from
// the header, so a gzip bomb never produces more than the header declares.
#pragma once

#include <torch/types.h>

#include <string>

namespace attnvision::datasets {

// The file's data as a contiguous uint8 tensor with the file's dims (N x 28 x 28 for MNIST images, N
// for labels). Only the unsigned-byte type (0x08) is read; 1 to 4 dims, each positive. The data must fill
// exactly what the header declares: missing or trailing bytes are errors, and so are corrupt or truncated
// gzip streams. Every error is a std::runtime_error whose what() is one line "PATH: problem".
torch::Tensor read_idx(const std::string& path);

}  // namespace attnvision::datasets
