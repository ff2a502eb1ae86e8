"""Label the financial SAE latents the analysis stage chose, and score the labels against controls.

    python label.py                                          # offline: lexical explainer + embedding scorer
    python label.py label=qwen label.base_url=http://HOST:8000/v1   # Qwen2.5-7B-Instruct behind `vllm serve`
    python label.py label.backend=openai label.base_url=http://HOST:8000/v1 label.model=Qwen/Qwen2.5-7B-Instruct
    python label.py label.backend=vllm label.model=Qwen/Qwen2.5-7B-Instruct   # inside the vLLM environment
"""

import hydra

from finsae.glue.app import cli, run_stage
from finsae.glue.schemas import register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="label")
def main(cfg):
    return run_stage(cfg, "finsae.glue.label_stage")


if __name__ == "__main__":
    cli(main)
