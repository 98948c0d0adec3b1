"""Which exceptions from a batch mean the device failed (real torch exception types)."""

from __future__ import annotations

import torch

from daemon.engine.engine import device_failure

GPU = torch.device("cuda:1")


def test_cuda_errors_are_device_failures_with_their_first_line() -> None:
    illegal = torch.AcceleratorError(
        "CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be "
        "asynchronously reported at some other API call"
    )
    failure = device_failure(illegal, GPU)
    assert failure is not None and failure.device == "cuda:1"
    assert failure.reason == "CUDA error: an illegal memory access was encountered"
    # older torch raises a plain RuntimeError with the same wording; cuBLAS and cuDNN too
    for text in ("CUDA error: unspecified launch failure", "CUBLAS_STATUS_EXECUTION_FAILED when "
                 "calling cublasSgemm", "CUDNN_STATUS_INTERNAL_ERROR"):  # fmt: skip
        assert device_failure(RuntimeError(text), GPU) is not None


def test_out_of_memory_and_ordinary_errors_stay_the_batch_s_own() -> None:
    assert (
        device_failure(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"), GPU) is None
    )
    assert (
        device_failure(RuntimeError("shape '[2, 3]' is invalid for input of size 5"), GPU) is None
    )
    assert device_failure(ValueError("CUDA error in a message text"), GPU) is None
