"""llmrt.quantize: GPTQ / RTN 4- and 8-bit quantizer writing standard GPTQ checkpoints.

    python -m llmrt.quantize --model HF_DIR --out OUT_DIR --bits 4 --group-size 128 \\
        [--desc-act] [--sym|--asym] [--format gptq|gptq_v2] [--method gptq|rtn] \\
        [--calib FILE|--calib-pydoc|--calib-builtin] [--nsamples 128 --seqlen 512] [--damp 0.01] \\
        [--static-groups] [--lm-head]

Modules:
  packing     numpy-only bit layout: pack/unpack qweight/qzeros, v1/v2 zeros, g_idx, reference
              dequantisation (kernels.md §3). No torch needed.
  checkpoint  numpy-only safetensors reader/writer, quantization config, whole-checkpoint
              dequantisation.
  gptq        the GPTQ algorithm for one Linear (torch), after AutoGPTQ's fasterquant; RTN.
  model       layer-by-layer driver over a Hugging Face Llama-family model (torch, transformers).
  calib       calibration samples (text file, pydoc or built-in text, tokenized with the model's
              tokenizer; or random token ids).
  ppl         perplexity of a float / GPTQ checkpoint with transformers (float32).
  texts       the built-in texts; pydoc calibration text and the pydoc evaluation text.

Importing this package imports only numpy; torch is imported by gptq/model/calib/ppl.
"""

from .packing import (  # noqa: F401
    act_order_g_idx,
    default_g_idx,
    dequantize,
    pack_qweight,
    pack_qzeros,
    unpack_qweight,
    unpack_qzeros,
    unpack_qzeros_raw,
    pack_qzeros_autogptq,
    v1_to_v2_gptqmodel,
)

__all__ = [
    "act_order_g_idx",
    "default_g_idx",
    "dequantize",
    "pack_qweight",
    "pack_qzeros",
    "unpack_qweight",
    "unpack_qzeros",
    "unpack_qzeros_raw",
    "pack_qzeros_autogptq",
    "v1_to_v2_gptqmodel",
]
