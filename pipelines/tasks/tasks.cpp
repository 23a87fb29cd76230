#include "pipelines/tasks/task.h"

#include <stdexcept>

namespace attnvision::pipelines {

const TaskRow& classify_task();  // pipelines/tasks/classify/
const TaskRow& detect_task();    // pipelines/tasks/detect/

const std::vector<TaskRow>& task_table() {
  static const std::vector<TaskRow> table = {classify_task(), detect_task()};
  return table;
}

namespace {

std::string known_tasks() {
  std::string known;
  for (const TaskRow& row : task_table()) known += (known.empty() ? "" : ", ") + std::string(row.name);
  return known;
}

}  // namespace

const TaskRow& task_named(const std::string& name) {
  for (const TaskRow& row : task_table())
    if (name == row.name) return row;
  throw std::invalid_argument("unknown task '" + name + "' (known: " + known_tasks() + ")");
}

const TaskRow& task_for_model(const std::string& model_task) {
  for (const TaskRow& row : task_table())
    if (model_task == row.model_task) return row;
  throw std::invalid_argument("no task runs models with task '" + model_task + "' (tasks: " + known_tasks() + ")");
}

}  // namespace attnvision::pipelines
