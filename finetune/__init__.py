"""LoRA fine-tuning of KoGPT-2 on a Korean fiction corpus; see finetune/train_lora.py and finetune/README.md."""
