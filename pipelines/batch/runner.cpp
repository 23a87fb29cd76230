#include "pipelines/batch/runner.h"

#include "datasets/preprocess.h"
#include "models/runtime.h"

#include <omp.h>
#include <tbb/concurrent_queue.h>
#include <tbb/global_control.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

namespace attnvision::pipelines {
namespace fs = std::filesystem;

namespace {

// One batch of inputs on its way through the pipeline.
struct Chunk {
  std::vector<vision::BatchInput> inputs;
  datasets::SampleBatch batch;
  std::vector<std::vector<TaskOutput>> outputs;  // [task][sample]
};
using ChunkPtr = std::shared_ptr<Chunk>;

// The preprocessings the tasks need, and which one each task reads (tasks sharing one share a tensor).
struct Transforms {
  std::vector<datasets::Preprocess> list;
  std::vector<size_t> of_task;
};

Transforms transforms_of(const std::vector<TaskInRun>& tasks) {
  Transforms t;
  for (const TaskInRun& task : tasks) {
    const datasets::Preprocess mine = datasets::preprocess_for(task.runner->model_cfg());
    auto it = std::find_if(t.list.begin(), t.list.end(), [&](const auto& e) { return datasets::same_preprocess(e, mine); });
    t.of_task.push_back(static_cast<size_t>(it - t.list.begin()));
    if (it == t.list.end()) t.list.push_back(mine);
  }
  return t;
}

// Writes a task's files for one input; returns the paths to list, relative to options.files_relative_to, and
// puts each where the task's JSON asks for it.
nlohmann::json write_files(const std::vector<PendingFile>& files, const std::string& task,
                           const vision::BatchInput& input, const RunOptions& o, nlohmann::json& task_json) {
  nlohmann::json written = nlohmann::json::array();
  for (const PendingFile& f : files) {
    fs::path path = fs::path(o.files_dir);
    if (o.task_subfolders) path /= task;
    path /= input.output_name + f.suffix;
    fs::create_directories(path.parent_path());
    f.write(path.string());
    written.push_back(o.files_relative_to.empty() ? path.string()
                                                  : path.lexically_relative(o.files_relative_to).string());
    if (!f.json_pointer.empty()) task_json[nlohmann::json::json_pointer(f.json_pointer)] = written.back();
  }
  return written;
}

// The writer's part of a chunk: each sample's files, then its result to the sink.
void write_chunk(Chunk& chunk, const std::vector<TaskInRun>& tasks, const RunOptions& options, const ResultSink& sink) {
  for (size_t i = 0; i < chunk.batch.samples.size(); ++i) {
    const datasets::Sample& s = chunk.batch.samples[i];
    InputResult r;
    r.input = &chunk.inputs[i];
    r.error = s.error;
    r.frames = s.frames;
    for (size_t t = 0; r.ok() && t < tasks.size(); ++t) {
      TaskOutput& out = chunk.outputs[t][i];
      try {
        if (!out.files.empty()) out.json["files"] = write_files(out.files, tasks[t].row->name, *r.input, options, out.json);
        r.outputs[tasks[t].row->name] = std::move(out.json);
      } catch (const std::exception& e) {
        r.error = s.input.path + ": " + e.what();
      }
    }
    if (!r.ok()) r.outputs = nlohmann::json::object();
    sink(r);
  }
}

// Keeps the calling thread's own ATen loops (at::parallel_for: a decoder's normalisation) on that thread.
// ATen gives every new thread, at its first call, an OpenMP team as large as the model's, which beside the
// model only oversubscribes the cores; the first call is made here so that it cannot undo the setting later.
void single_threaded_aten() {
  (void)at::get_num_threads();
  omp_set_num_threads(1);
}

}  // namespace

void run_tasks(const std::vector<vision::BatchInput>& inputs, const std::vector<TaskInRun>& tasks,
               const RunOptions& options, const ResultSink& sink) {
  if (tasks.empty()) throw std::invalid_argument("no task to run");
  const Transforms transforms = transforms_of(tasks);
  int64_t batch = 1;
  bool grad = false;
  datasets::DecodeOptions decode = options.decode;
  for (const TaskInRun& t : tasks) {
    batch = std::max(batch, t.runner->batch_size());
    grad = grad || t.runner->needs_grad();
    decode.keep_display = decode.keep_display || t.runner->needs_display();
    decode.keep_modality = decode.keep_modality || t.runner->needs_modality();
  }
  // By default the decoders get the cores the model leaves free. When the model's threads take every core,
  // a decoder thread beside them only preempts one of them now and then, and the model's OpenMP team then
  // waits at its next barrier for that thread: on 2 cores with torch on both, Grad-CAM on CT slices took
  // 6.6 ms per slice with a decoder thread running and 5.0 ms without. So then the model's own threads
  // decode each batch before running it (DecodeOptions::parallel), and decode threads run only when asked for
  // (--workers N): ResNet-18 classification of 300 JPEGs ran 8-12% faster end to end that way (2026-12-05).
  const int torch_threads = options.torch_threads > 0 ? options.torch_threads : at::get_num_threads();
  const int free_cores = models::available_cores() - torch_threads;
  const bool decode_inline = options.workers == 0 && free_cores < 1;
  const int workers = options.workers > 0 ? options.workers : std::max(1, free_cores);
  decode.parallel = decode_inline;

  // Decoded batches wait here for the model, finished ones for the writer: at most this many each, so memory
  // stays flat however many inputs there are. A null chunk ends a stream.
  tbb::concurrent_bounded_queue<ChunkPtr> decoded, finished;
  decoded.set_capacity(workers);
  finished.set_capacity(2);
  std::exception_ptr failure;  // the first stage that failed, rethrown once all threads are joined
  std::mutex failure_mutex;
  auto fail = [&](std::exception_ptr e) {
    {
      const std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = e;
    }
    decoded.abort();  // wakes every thread blocked on a queue, with tbb::user_abort
    finished.abort();
  };
  // The next `batch` inputs, in order (empty when none are left).
  size_t next = 0;
  auto next_chunk = [&]() -> ChunkPtr {
    if (next >= inputs.size()) return nullptr;
    auto chunk = std::make_shared<Chunk>();
    const size_t end = std::min(inputs.size(), next + static_cast<size_t>(batch));
    chunk->inputs.assign(inputs.begin() + static_cast<std::ptrdiff_t>(next),
                         inputs.begin() + static_cast<std::ptrdiff_t>(end));
    next = end;
    return chunk;
  };
  // OpenCV runs its own parallel loops on oneTBB: held to the calling thread, so that the decoders (or the
  // model's threads) are all the parallelism there is.
  const tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism,
                                        static_cast<size_t>(decode_inline ? 1 : workers));

  // Decode workers: take the next `batch` inputs (in order), decode them in parallel, hand them on in order.
  std::thread decoder;
  if (!decode_inline)
    decoder = std::thread([&] {
      try {
        tbb::task_arena arena(workers);
        arena.execute([&] {
          tbb::parallel_pipeline(
              static_cast<size_t>(workers) + 1,
              tbb::make_filter<void, ChunkPtr>(tbb::filter_mode::serial_in_order,
                                               [&](tbb::flow_control& fc) -> ChunkPtr {
                                                 ChunkPtr chunk = next_chunk();
                                                 if (!chunk) fc.stop();
                                                 return chunk;
                                               }) &
                  tbb::make_filter<ChunkPtr, ChunkPtr>(tbb::filter_mode::parallel,
                                                       [&](ChunkPtr chunk) {
                                                         single_threaded_aten();
                                                         chunk->batch = datasets::decode_samples(
                                                             chunk->inputs, transforms.list, decode);
                                                         return chunk;
                                                       }) &
                  tbb::make_filter<ChunkPtr, void>(tbb::filter_mode::serial_in_order,
                                                   [&](ChunkPtr chunk) { decoded.push(std::move(chunk)); }));
        });
        decoded.push(nullptr);
      } catch (const tbb::user_abort&) {
      } catch (...) {
        fail(std::current_exception());
      }
    });

  // The writer: every file of a chunk (atomically), then the sink, input by input.
  std::thread writer([&] {
    try {
      for (ChunkPtr chunk; finished.pop(chunk), chunk;) write_chunk(*chunk, tasks, options, sink);
    } catch (const tbb::user_abort&) {
    } catch (...) {
      fail(std::current_exception());
    }
  });

  // The model on this thread: its OpenMP pool and its allocations (the main malloc arena, kept warm by
  // models::keep_freed_memory) stay the same from batch to batch.
  auto decoded_chunk = [&]() -> ChunkPtr {
    if (!decode_inline) {
      ChunkPtr chunk;
      decoded.pop(chunk);
      return chunk;
    }
    ChunkPtr chunk = next_chunk();
    if (chunk) chunk->batch = datasets::decode_samples(chunk->inputs, transforms.list, decode);
    return chunk;
  };
  try {
    if (options.torch_threads > 0) at::set_num_threads(options.torch_threads);
    while (ChunkPtr chunk = decoded_chunk()) {
      // Inside the scope only: the decode's tensors are made on pool threads, which InferenceMode (a thread's
      // own state) does not reach, and must not be inference tensors.
      const c10::InferenceMode inference(!grad);
      for (size_t t = 0; t < tasks.size(); ++t) {
        const torch::Tensor& x = chunk->batch.inputs[transforms.of_task[t]];
        chunk->outputs.push_back(x.defined() ? tasks[t].runner->run(chunk->batch, x)
                                             : std::vector<TaskOutput>(chunk->batch.samples.size()));
      }
      finished.push(std::move(chunk));
    }
    finished.push(nullptr);
  } catch (const tbb::user_abort&) {
  } catch (...) {
    fail(std::current_exception());
  }
  if (decoder.joinable()) decoder.join();
  writer.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace attnvision::pipelines
