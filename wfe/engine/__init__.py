"""Running a workflow: the plan, the runner, node kinds, tasks, executors, output capture, leases."""
