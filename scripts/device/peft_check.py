"""PEFT side of the adapter cross-check (run where torch, transformers and peft are installed).

peft_check.py MODEL.gguf DIR
    Builds the Hugging Face Qwen2 model of a random F32 GGUF written by fmr's random_gguf (the
    tensors read straight from the file), loads fmr's adapter DIR/ours with PEFT and compares
    PEFT's per-token log-probs with fmr's (DIR/ours_logprobs.json). Then makes an adapter with
    PEFT (random A and B), saves it to DIR/theirs and writes PEFT's log-probs to
    DIR/theirs_logprobs.json for fmr to reproduce (`peft_check score`).
peft_check.py --compare A.json B.json
    Compares two log-prob files.
Prints PASS/FAIL lines.
"""
import json
import struct
import sys

import numpy as np

TOL = 1e-4  # nats, f32 on both sides


def read_gguf(path):
    """Metadata and F32 tensors of a GGUF file (numpy arrays, PyTorch layout)."""
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        raise ValueError(f"GGUF value type {t}")

    assert data[:4] == b"GGUF", "not a GGUF file"
    pos = 4
    take("I")
    n_tensors, n_kv = take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        ty, off = take("I"), take("Q")
        infos.append((name, ne, ty, off))
    align = meta.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    tensors = {}
    for name, ne, ty, off in infos:
        assert ty == 0, f"{name}: only F32 tensors are read (type {ty})"
        n = int(np.prod(ne))
        arr = np.frombuffer(data, dtype=np.float32, count=n, offset=base + off)
        tensors[name] = arr.reshape(list(reversed(ne))).copy()
    return meta, tensors


def hf_qwen2(meta, tensors):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    a = "qwen2"
    d = meta[f"{a}.embedding_length"]
    n_head = meta[f"{a}.attention.head_count"]
    cfg = Qwen2Config(
        vocab_size=tensors["token_embd.weight"].shape[0],
        hidden_size=d,
        intermediate_size=meta[f"{a}.feed_forward_length"],
        num_hidden_layers=meta[f"{a}.block_count"],
        num_attention_heads=n_head,
        num_key_value_heads=meta.get(f"{a}.attention.head_count_kv", n_head),
        rms_norm_eps=meta[f"{a}.attention.layer_norm_rms_epsilon"],
        rope_theta=meta.get(f"{a}.rope.freq_base", 10000.0),
        max_position_embeddings=meta.get(f"{a}.context_length", 4096),
        tie_word_embeddings="output.weight" not in tensors,
    )
    cfg._attn_implementation = "eager"
    m = Qwen2ForCausalLM(cfg).float()
    names = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    per_layer = {
        "attn_norm.weight": "input_layernorm.weight",
        "attn_q.weight": "self_attn.q_proj.weight",
        "attn_q.bias": "self_attn.q_proj.bias",
        "attn_k.weight": "self_attn.k_proj.weight",
        "attn_k.bias": "self_attn.k_proj.bias",
        "attn_v.weight": "self_attn.v_proj.weight",
        "attn_v.bias": "self_attn.v_proj.bias",
        "attn_output.weight": "self_attn.o_proj.weight",
        "ffn_norm.weight": "post_attention_layernorm.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight",
        "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
    }
    for l in range(cfg.num_hidden_layers):
        for k, v in per_layer.items():
            names[f"blk.{l}.{k}"] = f"model.layers.{l}.{v}"
    state = {names[k]: torch.from_numpy(v) for k, v in tensors.items()}
    if cfg.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    missing, unexpected = m.load_state_dict(state, strict=False)
    missing = [k for k in missing if "rotary" not in k]
    assert not missing and not unexpected, (missing, unexpected)
    return m.cuda().eval()


def logprobs(model, seqs):
    import torch

    out = []
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s], device="cuda")
            lg = model(input_ids=ids).logits[0, :-1].float()
            lp = torch.log_softmax(lg, -1).gather(1, ids[0, 1:].unsqueeze(1)).squeeze(1)
            out.append(lp.cpu().tolist())
    return out


def compare(label, a, b):
    d = np.concatenate([np.abs(np.array(x) - np.array(y)) for x, y in zip(a, b)])
    ok = len(a) == len(b) and all(len(x) == len(y) for x, y in zip(a, b)) and d.mean() <= TOL
    print(f"{'PASS' if ok else 'FAIL'} {label}: mean |Δ| {d.mean():.2e} nats, max {d.max():.2e} (≤ {TOL:.0e})")
    return ok


def main():
    if sys.argv[1] == "--compare":
        a = json.load(open(sys.argv[2]))["logprobs"]
        b = json.load(open(sys.argv[3]))["logprobs"]
        ok = compare("peft: an adapter PEFT wrote gives PEFT's log-probs in fmr", a, b)
        sys.exit(0 if ok else 1)
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gguf, d = sys.argv[1], sys.argv[2]
    meta, tensors = read_gguf(gguf)
    seqs = json.load(open(f"{d}/seqs.json"))["seqs"]
    ours = json.load(open(f"{d}/ours_logprobs.json"))["logprobs"]
    base = hf_qwen2(meta, tensors)
    peft_model = PeftModel.from_pretrained(base, f"{d}/ours").cuda().eval()
    ok1 = compare("peft: fmr's adapter loaded by PEFT gives fmr's log-probs", logprobs(peft_model, seqs), ours)
    base2 = hf_qwen2(meta, tensors)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    theirs = get_peft_model(base2, cfg)
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in theirs.named_parameters():
            if "lora_B" in n:
                p.normal_(0.0, 0.05)
    theirs.save_pretrained(f"{d}/theirs")
    json.dump({"logprobs": logprobs(theirs.eval(), seqs)}, open(f"{d}/theirs_logprobs.json", "w"))
    print(f"peft: wrote {d}/theirs and its log-probs")
    sys.exit(0 if ok1 else 1)


if __name__ == "__main__":
    main()
