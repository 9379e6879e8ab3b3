"""Acronyms and their long forms: a built-in table, the operator's CSV, and the corpus.

The corpus teaches pairs through its own definitions ("… reinforcement learning
(RL) …"), found with the Schwartz–Hearst algorithm (Schwartz & Hearst, "A simple
algorithm for identifying abbreviation definitions in biomedical text", PSB 2003).
The operator's file holds one ``acronym,long form`` pair per line; blank lines and
lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from flows.rank.text import TOKEN, stem, words

# Acronyms whose meaning in ML papers is settled; the corpus and the operator add more.
BUILTIN_ACRONYMS: tuple[tuple[str, str], ...] = (
    ("AI", "artificial intelligence"),
    ("ML", "machine learning"),
    ("DL", "deep learning"),
    ("RL", "reinforcement learning"),
    ("DRL", "deep reinforcement learning"),
    ("MARL", "multi-agent reinforcement learning"),
    ("MBRL", "model-based reinforcement learning"),
    ("IRL", "inverse reinforcement learning"),
    ("RLHF", "reinforcement learning from human feedback"),
    ("MDP", "Markov decision process"),
    ("POMDP", "partially observable Markov decision process"),
    ("PPO", "proximal policy optimization"),
    ("DPO", "direct preference optimization"),
    ("LM", "language model"),
    ("LLM", "large language model"),
    ("VLM", "vision-language model"),
    ("MLLM", "multimodal large language model"),
    ("NLP", "natural language processing"),
    ("NER", "named entity recognition"),
    ("QA", "question answering"),
    ("VQA", "visual question answering"),
    ("RAG", "retrieval-augmented generation"),
    ("CoT", "chain of thought"),
    ("ICL", "in-context learning"),
    ("SFT", "supervised fine-tuning"),
    ("PEFT", "parameter-efficient fine-tuning"),
    ("LoRA", "low-rank adaptation"),
    ("KD", "knowledge distillation"),
    ("MoE", "mixture of experts"),
    ("ViT", "vision transformer"),
    ("CNN", "convolutional neural network"),
    ("RNN", "recurrent neural network"),
    ("GNN", "graph neural network"),
    ("LSTM", "long short-term memory"),
    ("MLP", "multilayer perceptron"),
    ("SSM", "state space model"),
    ("GAN", "generative adversarial network"),
    ("VAE", "variational autoencoder"),
    ("NeRF", "neural radiance field"),
    ("3DGS", "3D Gaussian splatting"),
    ("ASR", "automatic speech recognition"),
    ("TTS", "text-to-speech"),
    ("OOD", "out-of-distribution"),
    ("BO", "Bayesian optimization"),
    # More settled ones, each with one meaning in ML writing. Left to the abstracts: two-letter
    # ones and those with a second common meaning (SSL, FL, DP, MAE, MPC, TTA; PRM is also a
    # probabilistic roadmap, SAE an engineering society, EBM evidence-based medicine) or that
    # are also a lower-case word (KG in "5 kg", ODE in "an ode to", MOT).
    ("RLAIF", "reinforcement learning from AI feedback"),
    ("RLVR", "reinforcement learning with verifiable rewards"),
    ("GRPO", "group relative policy optimization"),
    ("MCTS", "Monte Carlo tree search"),
    ("LVLM", "large vision-language model"),
    ("VLA", "vision-language-action"),
    ("VLN", "vision-and-language navigation"),
    ("NLI", "natural language inference"),
    ("NLU", "natural language understanding"),
    ("NLG", "natural language generation"),
    ("NMT", "neural machine translation"),
    ("MLM", "masked language modeling"),
    ("OCR", "optical character recognition"),
    ("SLAM", "simultaneous localization and mapping"),
    ("DiT", "diffusion transformer"),
    ("DDPM", "denoising diffusion probabilistic model"),
    ("LDM", "latent diffusion model"),
    ("GCN", "graph convolutional network"),
    ("GRU", "gated recurrent unit"),
    ("NAS", "neural architecture search"),
    ("HPO", "hyperparameter optimization"),
    ("SGD", "stochastic gradient descent"),
    ("NTK", "neural tangent kernel"),
    ("MAML", "model-agnostic meta-learning"),
    ("MTL", "multi-task learning"),
    ("CIL", "class-incremental learning"),
    ("ZSL", "zero-shot learning"),
    ("XAI", "explainable artificial intelligence"),
    ("PINN", "physics-informed neural network"),
    ("FNO", "Fourier neural operator"),
    ("PDE", "partial differential equation"),
    ("SDE", "stochastic differential equation"),
    ("MCMC", "Markov chain Monte Carlo"),
    ("GMM", "Gaussian mixture model"),
    ("HMM", "hidden Markov model"),
    ("CRF", "conditional random field"),
    ("SVM", "support vector machine"),
    ("PCA", "principal component analysis"),
)

_STOPWORDS = frozenset(
    "a an and as at by for from in into of on or our the their this that these those to we with".split()
)
_PARENTHESIS = re.compile(r"\(([^()]{1,120})\)")
_CLAUSE_END = re.compile(r"[.;:!?()\[\]]\s")
_SHORT_FORM = re.compile(r"[^\W_][\w'-]{1,9}")


class AcronymFileError(ValueError):
    """The operator's acronym file cannot be read or has a bad line."""


@dataclass(frozen=True, slots=True)
class AcronymTable:
    """Acronym stem ↔ long forms (normalised word tuples), both ways."""

    long_forms: Mapping[str, frozenset[tuple[str, ...]]] = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> "AcronymTable":
        """A table from ``(acronym, long form)`` text pairs; unusable pairs are skipped."""
        table: dict[str, set[tuple[str, ...]]] = {}
        for acronym, long_form in pairs:
            key, long_words = _normalised_pair(acronym, long_form)
            if key:
                table.setdefault(key, set()).add(long_words)
        return cls({key: frozenset(forms) for key, forms in table.items()})

    def merged(self, other: "AcronymTable") -> "AcronymTable":
        keys = self.long_forms.keys() | other.long_forms.keys()
        return AcronymTable({
            key: self.long_forms.get(key, frozenset()) | other.long_forms.get(key, frozenset())
            for key in keys
        })

    def without(self, keys: Collection[str]) -> "AcronymTable":
        """The table less the given acronym stems."""
        return AcronymTable({key: forms for key, forms in self.long_forms.items() if key not in keys})

    def acronyms_by_long_form(self) -> dict[tuple[str, ...], set[str]]:
        """Stemmed long form → acronym stems; also under each hyphen-joined variant."""
        reverse: dict[tuple[str, ...], set[str]] = {}
        for key, forms in self.long_forms.items():
            for long_words in forms:
                stems = tuple(stem(word) for word in long_words)
                reverse.setdefault(stems, set()).add(key)
                for i in range(len(long_words) - 1):
                    joined = stems[:i] + (stem(long_words[i] + long_words[i + 1]),) + stems[i + 2:]
                    reverse.setdefault(joined, set()).add(key)
        return reverse

    def __len__(self) -> int:
        return len(self.long_forms)


def _normalised_pair(acronym: str, long_form: str) -> tuple[str, tuple[str, ...]]:
    """(acronym stem, long-form words), or ("", ()) when the pair cannot be used."""
    short_words, long_words = words(acronym), tuple(words(long_form))
    if len(short_words) != 1 or not long_words or long_words == tuple(short_words):
        return "", ()
    return stem(short_words[0]), long_words


def load_acronyms(path: Path | None) -> AcronymTable:
    """The built-in table plus the operator's CSV file (``acronym,long form`` per line)."""
    table = AcronymTable.from_pairs(BUILTIN_ACRONYMS)
    if path is None:
        return table
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AcronymFileError(f"{path}: cannot be read ({exc})") from None
    return table.merged(AcronymTable.from_pairs(_file_pairs(path, text)))


def _file_pairs(path: Path, text: str) -> list[tuple[str, str]]:
    pairs = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) != 2:
            raise AcronymFileError(
                f"{path}, line {number}: expected 'acronym,long form', got {len(row)} fields"
            )
        acronym, long_form = row[0].strip(), row[1].strip()
        if len(words(acronym)) != 1:
            raise AcronymFileError(f"{path}, line {number}: acronym {acronym!r} must be one word")
        if not _normalised_pair(acronym, long_form)[0]:
            raise AcronymFileError(
                f"{path}, line {number}: long form {long_form!r} must have words other than the acronym"
            )
        pairs.append((acronym, long_form))
    return pairs


def learn_acronyms(texts: Iterable[str]) -> AcronymTable:
    """The acronyms the texts define, each with the meaning most of its definitions give.

    An acronym defined two ways about equally often ("CL": continual or contrastive
    learning) is left out: its meaning is not settled in this corpus. So is one that
    the texts also write in lower case ("DELTA" beside "delta"): it is a word too, and
    expanding it would match papers that only use the word.
    """
    texts = list(texts)
    votes: dict[str, Counter[str]] = {}
    spellings: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for text in texts:
        for acronym, long_form in definitions(text):
            key, long_words = _normalised_pair(acronym, long_form)
            if key:
                meaning = stem("".join(long_words))  # "fine-tuning" and "finetuning" agree
                votes.setdefault(key, Counter())[meaning] += 1
                spellings.setdefault((key, meaning), []).append((acronym, long_form))
    written = set(chain.from_iterable(map(TOKEN.findall, texts))) if votes else set()
    pairs = []
    for key, counts in votes.items():
        (meaning, count), = counts.most_common(1)
        if 2 * count > sum(counts.values()):
            pairs.extend(
                (acronym, long_form) for acronym, long_form in spellings[key, meaning]
                if acronym.lower() not in written and acronym.lower().removesuffix("s") not in written
            )
    return AcronymTable.from_pairs(pairs)


def definitions(text: str) -> list[tuple[str, str]]:
    """``(acronym, long form)`` pairs defined in one text: "long form (SF)" or "SF (long form)"."""
    found = []
    for match in _PARENTHESIS.finditer(text):
        inside = re.split(r"[;,]", match.group(1), maxsplit=1)[0].strip()
        before = _CLAUSE_END.split(text[max(0, match.start() - 300):match.start()])[-1].split()
        if not before:
            continue
        if _is_short_form(inside):
            long_form = _best_long_form(inside, before)
            if long_form:
                found.append((inside, long_form))
        elif len(inside.split()) >= 2:
            short = before[-1].strip("\"'“”‘’")
            if _is_short_form(short):
                long_form = _best_long_form(short, inside.split())
                if long_form:
                    found.append((short, long_form))
    return found


def _is_short_form(candidate: str) -> bool:
    # At least two capitals keeps out "(i)", "(see)", "(e.g." and ordinary words.
    return (
        _SHORT_FORM.fullmatch(candidate) is not None
        and sum(char.isupper() for char in candidate) >= 2
        and len(words(candidate)) == 1
    )


def _best_long_form(short: str, candidate_words: list[str]) -> str:
    """The long form that ``short`` abbreviates, ending at the end of ``candidate_words``."""
    letters = [char.lower() for char in short if char.isalnum()]
    window = candidate_words[-min(len(letters) + 5, 2 * len(letters)):]
    long_form = _by_initials(letters, window) or _by_letters(letters, " ".join(window))
    long_words = words(long_form)
    if len(long_form) <= len(short) or not long_words or long_words[0] in _STOPWORDS:
        return ""
    if stem(words(short)[0]) in {stem(word) for word in long_words}:
        return ""
    return long_form


def _by_initials(letters: list[str], window: list[str]) -> str:
    """The tail of ``window`` whose word initials spell the letters ("Proximal Policy Optimization")."""
    if len(letters) > 2 and letters[-1] == "s":
        letters = letters[:-1]  # "LLMs"
    parts = [(n, part) for n, word in enumerate(window) for part in re.split(r"[-‐‑]", word) if part]
    remaining = len(letters)
    for n, part in reversed(parts):
        if part[0].lower() == letters[remaining - 1]:
            remaining -= 1
            if remaining == 0:
                return " ".join(window[n:])
        elif part.lower() not in _STOPWORDS:
            return ""
    return ""


def _by_letters(letters: list[str], candidate: str) -> str:
    """Schwartz–Hearst: match letters right to left, the first one at a word start."""
    position = len(candidate) - 1
    for index in range(len(letters) - 1, -1, -1):
        char = letters[index]
        while position >= 0 and (
            candidate[position].lower() != char
            or (index == 0 and position > 0 and candidate[position - 1].isalnum())
        ):
            position -= 1
        if position < 0:
            return ""
        position -= 1
    # Start at the whole word: "self-supervised learning", not "supervised learning".
    start = candidate.rfind(" ", 0, position + 1) + 1
    return candidate[start:].strip()
