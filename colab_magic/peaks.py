"""The peak FLOP/s of the GPUs notebook users meet, and which peak a fit should be measured against.

Dense figures (no structured sparsity) in TFLOP/s from NVIDIA's datasheets (data-centre GPUs) and
architecture whitepapers (GeForce); where a datasheet gives only the "with sparsity" figure, half of
it. ``fp32``: the CUDA cores; ``tf32``: TF32 tensor cores (None before Ampere); ``half``: FP16/BF16
tensor cores with FP32 accumulation, as Keras' mixed precision uses them (BF16 needs Ampere or newer).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    gpu: str  # the row's name
    fp32: float
    tf32: float | None
    fp16: float | None  # FP16 tensor (FP32 accumulate); None without tensor cores
    bf16: float | None  # BF16 tensor; None before Ampere
    source: str  # the NVIDIA document the figures come from


# Matched against NVML's name, most specific first (e.g. "H100 PCIe" before "H100").
PEAKS = (
    Peak("H100 PCIe", 51.0, 378.0, 756.0, 756.0, "NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe)"),
    Peak("H100 NVL", 60.0, 417.5, 835.5, 835.5, "NVIDIA H100 Tensor Core GPU datasheet (H100 NVL)"),
    Peak("H100", 67.0, 494.7, 989.4, 989.4, "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM)"),
    Peak("H200", 67.0, 494.7, 989.4, 989.4, "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM)"),
    Peak("A100", 19.5, 156.0, 312.0, 312.0, "NVIDIA A100 Tensor Core GPU datasheet (40 GB and 80 GB)"),
    Peak("A10G", 31.2, 62.5, 125.0, 125.0, "NVIDIA A10 Tensor Core GPU datasheet (A10G is AWS's A10 variant; no datasheet of its own)"),
    Peak("A10", 31.2, 62.5, 125.0, 125.0, "NVIDIA A10 Tensor Core GPU datasheet"),
    Peak("L40S", 91.6, 183.0, 362.05, 362.05, "NVIDIA L40S GPU datasheet"),
    Peak("L4", 30.3, 60.0, 121.0, 121.0, "NVIDIA L4 Tensor Core GPU datasheet"),
    Peak("V100-PCIE", 14.0, None, 112.0, None, "NVIDIA Tesla V100 GPU datasheet (PCIe)"),
    Peak("V100", 15.7, None, 125.0, None, "NVIDIA Tesla V100 GPU datasheet (SXM2)"),
    Peak("T4", 8.1, None, 65.0, None, "NVIDIA T4 Tensor Core GPU datasheet"),
    Peak("P100-PCIE", 9.3, None, None, None, "NVIDIA Tesla P100 datasheet (PCIe)"),
    Peak("P100", 10.6, None, None, None, "NVIDIA Tesla P100 datasheet (SXM2)"),
    Peak("RTX 4090", 82.6, 82.6, 165.2, 165.2, "NVIDIA Ada Lovelace GPU architecture whitepaper (RTX 4090)"),
    Peak("RTX 4080", 48.7, 48.7, 97.5, 97.5, "NVIDIA Ada Lovelace GPU architecture whitepaper (RTX 4080)"),
    Peak("RTX 3090", 35.6, 35.6, 71.0, 71.0, "NVIDIA Ampere GA102 GPU architecture whitepaper (RTX 3090)"),
    Peak("RTX 3080", 29.8, 29.8, 59.5, 59.5, "NVIDIA Ampere GA102 GPU architecture whitepaper (RTX 3080)"),
    Peak("RTX 3070", 20.3, 20.3, 40.6, 40.6, "NVIDIA Ampere GA102 GPU architecture whitepaper (RTX 3070)"),
)


def find(gpu_name: str | None) -> Peak | None:
    name = (gpu_name or "").upper().replace("-", " ")
    for peak in PEAKS:
        if peak.gpu.upper().replace("-", " ") in name:
            return peak
    return None


@dataclass(frozen=True)
class PeakChoice:
    flops_per_s: float | None  # None: unknown
    basis: str  # which peak and why, in words


def choose(gpu_name: str | None, compute_dtype: str, tf32_enabled: bool) -> PeakChoice:
    """The peak a fit in ``compute_dtype`` ("float32", "float16", "bfloat16") can reach on this GPU."""
    peak = find(gpu_name)
    if peak is None:
        return PeakChoice(None, f"no peak known for {gpu_name or 'this GPU'}, so no MFU")
    if compute_dtype == "bfloat16":
        if peak.bf16 is not None:
            return PeakChoice(peak.bf16 * 1e12, f"{peak.gpu} BF16 tensor-core peak {peak.bf16:g} TFLOP/s ({peak.source})")
        return PeakChoice(peak.fp32 * 1e12, f"{peak.gpu} has no BF16 tensor cores: its FP32 peak {peak.fp32:g} TFLOP/s ({peak.source})")
    if compute_dtype == "float16":
        if peak.fp16 is not None:
            return PeakChoice(peak.fp16 * 1e12, f"{peak.gpu} FP16 tensor-core peak {peak.fp16:g} TFLOP/s ({peak.source})")
        return PeakChoice(peak.fp32 * 1e12, f"{peak.gpu} has no tensor cores: its FP32 peak {peak.fp32:g} TFLOP/s ({peak.source})")
    if tf32_enabled and peak.tf32 is not None:
        return PeakChoice(peak.tf32 * 1e12, f"{peak.gpu} TF32 tensor-core peak {peak.tf32:g} TFLOP/s: float32 matrix "
                                            f"products run as TF32 here ({peak.source})")
    return PeakChoice(peak.fp32 * 1e12, f"{peak.gpu} FP32 peak {peak.fp32:g} TFLOP/s ({peak.source})")
