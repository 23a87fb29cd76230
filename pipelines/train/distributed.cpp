#include "pipelines/train/distributed.h"

#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace attnvision::pipelines {

namespace {

constexpr std::chrono::minutes kTimeout{10};  // a peer that has not answered by then is gone

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

int env_int(const char* name, int fallback, int lo, int hi) {
  const std::string s = env_or(name, "");
  if (s.empty()) return fallback;
  try {
    size_t used = 0;
    const int v = std::stoi(s, &used);
    if (used == s.size() && v >= lo && v <= hi) return v;
  } catch (const std::exception&) {
  }
  throw std::runtime_error(std::string(name) + "=" + s + ": expected an integer in " + std::to_string(lo) + ".." +
                           std::to_string(hi));
}

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

std::vector<torch::Tensor> floating_buffers(torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& b : module.buffers())
    if (b.is_floating_point()) out.push_back(b);
  return out;
}

// A port the kernel says is free now; the store binds it a moment later (a race we accept on loopback).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) close(fd);
    throw std::runtime_error("cannot find a free local port for the worker rendezvous");
  }
  const int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

}  // namespace

struct DataParallel::Group {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

DataParallel::DataParallel(int rank, int world, const std::string& addr, int port)
    : group_(std::make_unique<Group>()), rank_(rank), world_(world) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = world;
  so.waitWorkers = true;
  so.timeout = kTimeout;
  group_->store = c10::make_intrusive<c10d::TCPStore>(addr, so);
  auto options = c10d::ProcessGroupGloo::Options::create(kTimeout);
  const std::string ifname = env_or("GLOO_SOCKET_IFNAME", "");
  if (!ifname.empty()) options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (is_loopback(addr)) options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  group_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(group_->store, rank, world, options);
}

DataParallel::~DataParallel() = default;

std::unique_ptr<DataParallel> DataParallel::from_env() {
  const int world = env_int("WORLD_SIZE", 1, 1, 4096);
  if (world == 1) return nullptr;
  const int rank = env_int("RANK", -1, 0, world - 1);
  if (rank < 0) throw std::runtime_error("WORLD_SIZE is set but RANK is not");
  const std::string addr = env_or("MASTER_ADDR", "127.0.0.1");
  const int port = env_int("MASTER_PORT", 29500, 1, 65535);
  try {
    return std::unique_ptr<DataParallel>(new DataParallel(rank, world, addr, port));
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw std::runtime_error("rank " + std::to_string(rank) + " could not join the group at " + addr + ":" +
                             std::to_string(port) + ": " + what);
  }
}

void DataParallel::broadcast_state(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> all = module.parameters();
  for (const torch::Tensor& b : module.buffers()) all.push_back(b);
  for (torch::Tensor& t : all) {
    std::vector<at::Tensor> one{t};
    group_->pg->broadcast(one, c10d::BroadcastOptions{})->wait();
  }
}

void DataParallel::average_gradients(torch::nn::Module& module) {
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& p : module.parameters())
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return;
  // One flat buffer: a single all-reduce costs one latency instead of one per tensor.
  std::vector<torch::Tensor> flat_views;
  for (const torch::Tensor& g : grads) flat_views.push_back(g.reshape({-1}));
  std::vector<at::Tensor> flat{torch::cat(flat_views)};
  group_->pg->allreduce(flat)->wait();
  flat[0].div_(world_);
  int64_t offset = 0;
  for (torch::Tensor& g : grads) {
    g.copy_(flat[0].narrow(0, offset, g.numel()).view_as(g));
    offset += g.numel();
  }
}

void DataParallel::average_buffers(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (torch::Tensor& b : floating_buffers(module)) {
    std::vector<at::Tensor> one{b};
    group_->pg->allreduce(one)->wait();
    b.div_(world_);
  }
}

void DataParallel::sum(torch::Tensor& values) {
  std::vector<at::Tensor> one{values};
  group_->pg->allreduce(one)->wait();
}

int64_t DataParallel::check_replicas_identical(torch::nn::Module& module, const std::string& when) {
  // FNV-1a over the bytes of every parameter and buffer, kept to 62 bits so that it can be negated: the
  // all-reduce MAX of (h, -h) gives the largest and the smallest digest at once.
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](const torch::Tensor& t) {
    const torch::Tensor c = t.contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    for (size_t i = 0; i < c.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ULL;
  };
  for (const torch::Tensor& p : module.parameters()) mix(p.detach());
  for (const torch::Tensor& b : module.buffers()) mix(b);
  const int64_t d = static_cast<int64_t>(h >> 2);
  std::vector<at::Tensor> v{torch::tensor({d, -d}, torch::kInt64)};
  c10d::AllreduceOptions max;
  max.reduceOp = c10d::ReduceOp::MAX;
  group_->pg->allreduce(v, max)->wait();
  const auto a = v[0].accessor<int64_t, 1>();
  if (a[0] != -a[1])
    throw std::runtime_error("data-parallel replicas differ " + when + " (weight digests " + std::to_string(a[0]) +
                             " vs " + std::to_string(-a[1]) + ")");
  return d;
}

void DataParallel::barrier() { group_->pg->barrier()->wait(); }

int launch_local_workers(int nproc, const std::vector<std::string>& args) {
  const int port = free_port();
  const int threads = std::max<int>(1, static_cast<int>(std::thread::hardware_concurrency()) / nproc);
  std::vector<pid_t> pids;
  for (int rank = 0; rank < nproc; ++rank) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e;
      const std::string key = kv.substr(0, kv.find('='));
      if (key != "RANK" && key != "WORLD_SIZE" && key != "MASTER_ADDR" && key != "MASTER_PORT" &&
          key != "ATTNVISION_WORKER_THREADS")
        env.push_back(kv);
    }
    env.push_back("RANK=" + std::to_string(rank));
    env.push_back("WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(port));
    env.push_back("ATTNVISION_WORKER_THREADS=" + std::to_string(threads));
    std::vector<std::string> argv_s{"/proc/self/exe"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv, envp;
    for (std::string& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (std::string& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) != 0) {
      for (pid_t p : pids) kill(p, SIGTERM);
      throw std::runtime_error("cannot start worker process " + std::to_string(rank) + ": " + std::strerror(errno));
    }
    pids.push_back(pid);
  }
  int result = 0;
  for (size_t left = pids.size(); left > 0; --left) {
    int status = 0;
    const pid_t done = waitpid(-1, &status, 0);
    if (done < 0) break;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && result == 0) {
      result = code;
      for (pid_t p : pids)
        if (p != done) kill(p, SIGTERM);  // the survivors would wait for the dead rank until the timeout
    }
  }
  return result;
}

}  // namespace attnvision::pipelines
