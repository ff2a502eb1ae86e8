"""A tiny random Llama with a byte-level BPE tokenizer and a chat template, saved as a Hugging Face folder.

Used by the hf-backend tests and by ``sweeps/vllm_cpu_server.sh`` (a real vLLM server on CPU); imports only
transformers and tokenizers, so it runs in the separate vLLM environment too:

    python tests/labeling/tiny_lm.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
CORPUS = [
    "Sentences where the feature fires: the Fed raised interest rates, dividend payouts rose, earnings beat.",
    '{"label": "central bank rate decisions", "description": "Fires on words about rates."}',
    '{"answers": [1, 0, 1, 0]} Explanation: Sentences: JSON answer: activations: <<word>> 0 1 2 3 4 5 6 7 8 9 10',
    "The company said the merger would close on Monday. Investors welcomed the annual report last week.",
]


def save_tiny_chat_lm(out: str | Path, vocab_size: int = 512, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|pad|>"]
    tok.train_from_iterator(CORPUS * 20, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                   bos_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    # head_dim 64: vLLM's CPU attention kernels support no head size below 32.
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=4096,
                      bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                      tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


if __name__ == "__main__":
    print(save_tiny_chat_lm(sys.argv[1]))
