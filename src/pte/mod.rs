//! Safe ExecuTorch program loading and execution.
