"""Reading a Hugging Face-layout checkpoint directory: config, weights, tokenizer ids.

Only local files are read; nothing is ever fetched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import torch
from safetensors import safe_open

from .errors import ExportError

FAMILIES = ("sdar", "fast_dllm_v2", "llada", "dream")

# How each family's published config.json identifies itself.
_MODEL_TYPES = {
    "sdar": "sdar",
    "fast_dllm_qwen": "fast_dllm_v2",
    "llada": "llada",
    "dream": "dream",
}
_ARCHITECTURES = {
    "SDARForCausalLM": "sdar",
    "Fast_dLLM_QwenForCausalLM": "fast_dllm_v2",
    "LLaDAModelLM": "llada",
    "DreamModel": "dream",
}


def read_json(path: Path) -> Dict[str, Any]:
    """Parse a JSON file, turning I/O and syntax problems into ExportError.

    Example:
        >>> read_json(Path("/nonexistent/config.json"))
        Traceback (most recent call last):
        ...
        diffulex_export.errors.ExportError: cannot read /nonexistent/config.json: ...
    """
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise ExportError(f"cannot read {path}: file not found") from e
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"cannot read {path}: {e}") from e


def load_config(ckpt_dir: Path) -> Dict[str, Any]:
    """config.json of a checkpoint directory, as a dict.

    Example:
        >>> cfg = load_config(Path("tests/fixtures/ckpt/sdar"))  # doctest: +SKIP
        >>> cfg["model_type"]  # doctest: +SKIP
        'sdar'
    """
    if not ckpt_dir.is_dir():
        raise ExportError(f"checkpoint directory {ckpt_dir} does not exist")
    path = ckpt_dir / "config.json"
    if not path.is_file():
        raise ExportError(f"config.json not found in {ckpt_dir}")
    return read_json(path)


def detect_family(config: Dict[str, Any]) -> Optional[str]:
    """The family named by a config's model_type or architectures, or None.

    Example:
        >>> detect_family({"model_type": "Dream", "architectures": ["DreamModel"]})
        'dream'
        >>> detect_family({"model_type": "qwen3"}) is None
        True
    """
    model_type = str(config.get("model_type", "")).lower()
    if model_type in _MODEL_TYPES:
        return _MODEL_TYPES[model_type]
    for arch in config.get("architectures") or []:
        if arch in _ARCHITECTURES:
            return _ARCHITECTURES[arch]
    return None


def resolve_family(config: Dict[str, Any], family: Optional[str], ckpt_dir: Path) -> str:
    """Check a requested family against the config, or detect it when not given.

    Example:
        >>> resolve_family({"model_type": "sdar"}, None, Path("x"))
        'sdar'
        >>> resolve_family({"model_type": "sdar"}, "llada", Path("x"))
        Traceback (most recent call last):
        ...
        diffulex_export.errors.ExportError: x: --family llada does not match the checkpoint, whose config.json says sdar (model_type 'sdar')
    """
    if family is not None and family not in FAMILIES:
        raise ExportError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    detected = detect_family(config)
    model_type = config.get("model_type")
    if family is None:
        if detected is None:
            raise ExportError(
                f"{ckpt_dir}: cannot tell the model family from config.json "
                f"(model_type {model_type!r}, architectures {config.get('architectures')}); "
                f"pass --family {'|'.join(FAMILIES)}"
            )
        return detected
    if detected is not None and detected != family:
        raise ExportError(
            f"{ckpt_dir}: --family {family} does not match the checkpoint, whose config.json "
            f"says {detected} (model_type {model_type!r})"
        )
    return family


class WeightStore:
    """Lazy access to the tensors of one checkpoint (single file or sharded with an index).

    Example:
        >>> ws = WeightStore(Path("tests/fixtures/ckpt/dream"))  # doctest: +SKIP
        >>> ws.get("model.norm.weight").shape  # doctest: +SKIP
        torch.Size([64])
    """

    def __init__(self, ckpt_dir: Path):
        self.ckpt_dir = ckpt_dir
        self._where: Dict[str, Path] = {}
        index = ckpt_dir / "model.safetensors.index.json"
        if index.is_file():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ExportError(f"{index}: no 'weight_map' object")
            for name, fname in weight_map.items():
                shard = ckpt_dir / fname
                if not shard.is_file():
                    raise ExportError(f"{index} names shard {fname}, which is missing")
                self._where[name] = shard
        else:
            files = sorted(ckpt_dir.glob("*.safetensors"))
            if not files:
                raise ExportError(
                    f"no weights in {ckpt_dir}: expected model.safetensors or "
                    f"model.safetensors.index.json with its shards"
                )
            for path in files:
                with safe_open(str(path), framework="pt") as f:
                    for name in f.keys():
                        self._where[name] = path

    def names(self) -> Iterable[str]:
        """All tensor names in the checkpoint."""
        return self._where.keys()

    def has(self, name: str) -> bool:
        """Whether the checkpoint holds a tensor with this name."""
        return name in self._where

    def get(self, name: str) -> torch.Tensor:
        """Read one tensor (as stored: dtype unchanged)."""
        path = self._where.get(name)
        if path is None:
            raise ExportError(f"{self.ckpt_dir}: missing weight {name}")
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor(name)


def _as_id_list(value: Any) -> List[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def eos_ids(ckpt_dir: Path, config: Dict[str, Any]) -> List[int]:
    """Stop ids: generation_config.json's eos_token_id first, then config.json's, deduplicated.

    Example:
        >>> eos_ids(Path("/nonexistent"), {"eos_token_id": [5, 7]})
        [5, 7]
    """
    ids: List[int] = []
    gen = ckpt_dir / "generation_config.json"
    if gen.is_file():
        ids += _as_id_list(read_json(gen).get("eos_token_id"))
    ids += _as_id_list(config.get("eos_token_id"))
    out: List[int] = []
    for i in ids:
        if i not in out:
            out.append(i)
    return out


def token_id_from_tokenizer(ckpt_dir: Path, contents: Iterable[str]) -> Optional[int]:
    """Id of the first added token of tokenizer.json whose text is one of `contents`.

    Example:
        >>> token_id_from_tokenizer(Path("/nonexistent"), ["<|MASK|>"]) is None
        True
    """
    path = ckpt_dir / "tokenizer.json"
    if not path.is_file():
        return None
    added = read_json(path).get("added_tokens") or []
    wanted = list(contents)
    for want in wanted:
        for tok in added:
            if tok.get("content") == want:
                return int(tok["id"])
    return None
