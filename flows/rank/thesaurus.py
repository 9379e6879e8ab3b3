"""A small built-in thesaurus of machine-learning topics: phrases that name one subject.

Papers on a subject often never write the subscriber's words: a reinforcement-learning
paper may say only "actor-critic" or "policy gradient", a continual-learning paper
"lifelong learning" or "class-incremental". The related model (flows.rank.related) learns
such neighbours from the stored papers, but it needs many papers per subject; this list
knows the common ones from the first day, as the built-in acronyms do.

Each group is one subject: every phrase in it names the subject or a common way into it.
A keyword that is one of a group's phrases (or holds one as the part that carries its
head: "deep *reinforcement learning*", "offline *RL*") takes the group's other phrases
as neighbours. A neighbour earns a share of the keyword's credit like a graded part
(flows.rank.graded), never the whole, and the explanation names it. Phrases are written
as a paper would; hyphen, joined, acronym and British/American variants are the index's
as for any keyword. Only phrases with one meaning in machine-learning writing belong here;
single common words ("agent", "reward", "expert") do not.

Written from the field's vocabulary, not from any judged set: see the README's
"Evaluation" for what it changed there.
"""

from __future__ import annotations

GROUPS_TEXT = """
reinforcement learning; policy gradient; actor-critic; Q-learning; Markov decision process; temporal difference learning; reward shaping; deep Q-network; proximal policy optimization; soft actor-critic; value function approximation; policy optimization
offline reinforcement learning; batch reinforcement learning; conservative Q-learning; implicit Q-learning; offline-to-online
model-based reinforcement learning; world model; learned dynamics model; model predictive control; latent dynamics; planning with a learned model
multi-agent reinforcement learning; MARL; centralized training with decentralized execution; cooperative multi-agent
imitation learning; behavior cloning; learning from demonstrations; inverse reinforcement learning
reinforcement learning from human feedback; RLHF; reward model; preference optimization; direct preference optimization; DPO; human preference data; preference alignment
continual learning; lifelong learning; incremental learning; class-incremental learning; task-incremental learning; catastrophic forgetting; rehearsal; continual test-time adaptation
transfer learning; domain adaptation; knowledge transfer; cross-lingual transfer; cross-domain transfer; negative transfer; domain generalization
multi-task learning; multitask training; task interference; auxiliary tasks; shared encoder; negative transfer
meta-learning; learning to learn; few-shot learning; MAML
self-supervised learning; contrastive learning; masked image modeling; masked autoencoder; pretext task; SimCLR; BYOL; momentum contrast; InfoNCE; joint-embedding; non-contrastive
federated learning; federated averaging; FedAvg; client drift; non-IID clients; decentralized training; cross-device
differential privacy; DP-SGD; privacy budget; private training; membership inference; privacy-preserving machine learning
machine unlearning; unlearning; data deletion; right to be forgotten
mixture of experts; MoE; expert routing; gating network; sparse experts; top-k routing; sparsely activated; expert parallelism
LLM reasoning; chain-of-thought; mathematical reasoning; test-time scaling; process reward model; verifiable rewards; RLVR; GRPO; long chain-of-thought; step-by-step reasoning; self-consistency; reasoning model
math reasoning; mathematical reasoning; math word problems; theorem proving; GSM8K; competition mathematics
code generation; program synthesis; code LLM; code completion; software engineering agents
prompt optimization; prompt engineering; automatic prompt optimization; prompt search; prompt tuning; instruction optimization; soft prompt; prompt design
in-context learning; few-shot prompting; in-context examples; demonstration selection; many-shot
parameter-efficient fine-tuning; PEFT; LoRA; low-rank adaptation; adapter; prefix tuning; prompt tuning; QLoRA; DoRA
scientific machine learning; physics-informed neural network; PINN; neural operator; Fourier neural operator; surrogate model; partial differential equation; PDE solver; computational fluid dynamics; molecular dynamics; materials discovery
graph neural network; GNN; message passing; graph convolutional network; node classification; graph transformer
diffusion model; denoising diffusion; score-based generative model; DDPM; latent diffusion; flow matching
retrieval-augmented generation; RAG; retriever; dense retrieval; retrieval augmentation
LLM agents; agentic; tool use; function calling; web agent; autonomous agent; multi-agent system
vision-language model; VLM; multimodal large language model; MLLM; LVLM; visual question answering
quantization; post-training quantization; low-bit; quantization-aware training; weight quantization
model compression; pruning; knowledge distillation; quantization; low-rank compression
knowledge distillation; teacher-student; distillation; student model
speculative decoding; draft model; KV cache; efficient inference; inference acceleration
long context; context window; long-context modeling; context length extension; RoPE scaling
hallucination; factuality; faithfulness; factual consistency; grounded generation
jailbreak; red teaming; safety alignment; harmful content; refusal
adversarial robustness; adversarial examples; adversarial attack; adversarial training; certified robustness
interpretability; mechanistic interpretability; sparse autoencoder; feature attribution; explainability
speech recognition; automatic speech recognition; ASR; speech-to-text
text-to-speech; TTS; speech synthesis; voice cloning
video generation; text-to-video; video diffusion
3D reconstruction; neural radiance field; NeRF; Gaussian splatting; novel view synthesis
object detection; open-vocabulary detection; bounding box
semantic segmentation; instance segmentation; panoptic segmentation; segment anything
robot learning; robotic manipulation; embodied AI; vision-language-action; VLA; sim-to-real; locomotion
autonomous driving; self-driving; motion planning; trajectory prediction
recommender system; recommendation; collaborative filtering; click-through rate prediction
time series forecasting; time series; temporal forecasting; multivariate forecasting
anomaly detection; outlier detection; novelty detection; out-of-distribution detection
out-of-distribution generalization; distribution shift; domain generalization; spurious correlations
uncertainty quantification; Bayesian neural network; conformal prediction; predictive uncertainty
causal inference; causal discovery; treatment effect; counterfactual reasoning
algorithmic fairness; fairness; bias mitigation; demographic parity
neural architecture search; NAS; architecture search; AutoML; hyperparameter optimization
scaling laws; compute-optimal; scaling behavior
state space model; SSM; Mamba; linear attention; linear recurrent
efficient attention; linear attention; sparse attention; FlashAttention
instruction tuning; supervised fine-tuning; SFT; instruction following
knowledge graph; knowledge graph completion; entity linking; knowledge base
machine translation; neural machine translation; NMT; multilingual translation
information retrieval; dense retrieval; reranking; passage retrieval
medical imaging; radiology; medical image segmentation; clinical imaging
drug discovery; molecular generation; protein design; protein structure prediction; molecule generation
active learning; query strategy; labeling budget; uncertainty sampling
semi-supervised learning; pseudo-labeling; consistency regularization; unlabeled data
test-time adaptation; test-time training; source-free domain adaptation
generative adversarial network; GAN; adversarial generation
variational autoencoder; VAE; evidence lower bound
text-to-image generation; text-to-image; image generation; image synthesis
image editing; text-guided image editing; instruction-based image editing
video understanding; video question answering; temporal grounding; video-language model
visual grounding; referring expression comprehension; phrase grounding
audio generation; text-to-audio; music generation
question answering; open-domain question answering; multi-hop question answering; reading comprehension
text summarization; abstractive summarization; extractive summarization
tokenization; tokenizer; byte-pair encoding; subword tokenization
model merging; model soup; weight averaging; task arithmetic; task vectors
knowledge editing; model editing; editing factual knowledge
watermarking; LLM watermark; machine-generated text detection; AI-generated text detection
synthetic data generation; synthetic data; data synthesis
data selection; data curation; data filtering; data pruning
curriculum learning; curriculum; easy-to-hard
Bayesian optimization; acquisition function; Gaussian process surrogate; black-box optimization
optimal transport; Wasserstein distance; Sinkhorn
neural ordinary differential equation; neural ODE; continuous-depth model
spiking neural network; SNN; neuromorphic computing
weather forecasting; numerical weather prediction; climate modeling; precipitation nowcasting
"""


def groups() -> tuple[tuple[str, ...], ...]:
    """The groups, each a tuple of phrases as written above."""
    found = []
    for line in GROUPS_TEXT.strip().splitlines():
        members = tuple(dict.fromkeys(m.strip() for m in line.split(";") if m.strip()))
        if len(members) >= 2:
            found.append(members)
    return tuple(found)


GROUPS = groups()
