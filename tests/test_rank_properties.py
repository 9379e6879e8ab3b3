"""Properties of ranking that must hold for any keywords, exclusions and texts."""

import json
import math
import random
import re
from datetime import date
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flows.models import Match, Paper, RankedPaper
from flows.rank import MIN_SCORE, QueryError, build_index, parse_keyword, parse_query, rank, rank_many, snippet
from flows.rank.excerpt import Excerpts
from flows.rank.query import FIELDS, Query, _parse_keyword
from flows.rank.keyword_scores import level_scores, saturate
from flows.rank.score import PARTIAL_MIN
from flows.rank.text import inflection_base, normalise, spans, stems, stems_and_spans
from flows.bench.rank import synthetic_papers
from flows.subscribers import Subscriber

SEEDS = Path(__file__).parent / "data" / "rank" / "seed_papers.json"
# Words and phrases from the seed papers, plus spellings that exercise the language.
VOCABULARY = [
    "learning", "reinforcement learning", "RL", "LLM", "large language models", "reward model", "MoE",
    "mixture of experts", "multi-agent", "multiagent", "diffusion", "world model", "survey", "benchmark",
    "alignment", "preference", "GAN", "contrastive", "continual learning", "transformer", "reasoning",
    "Bayesian optimization", "tool", "memory", "video", "graph", "privacy", "federated", "DSI", "policy",
]
keywords = st.lists(
    st.builds(
        lambda word, field, weight: f"{field}{word}{weight}",
        st.sampled_from(VOCABULARY),
        st.sampled_from(["", "", "title:", "abstract:"]),
        st.sampled_from(["", "", "^2", "^0.5", "^10"]),
    ),
    min_size=1, max_size=6,
)
exclusions = st.lists(st.sampled_from(VOCABULARY), max_size=3)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def papers() -> tuple[Paper, ...]:
    return tuple(
        Paper(id=item["id"], title=item["title"], abstract=item["abstract"], listed=date(2024, 6, 3),
              upvotes=item["upvotes"])
        for item in json.loads(SEEDS.read_text(encoding="utf-8"))
    )


@cache
def index():
    return build_index(papers())


def reader(words, exclude=(), popularity=1.0) -> Subscriber:
    return Subscriber(email="reader@example.org", keywords=list(words), exclude=list(exclude),
                      popularity=popularity, max_papers=100)


def scores(found) -> dict[str, float]:
    return {item.paper.id: item.score for item in found}


@settings(FAST, max_examples=20)
@given(words=keywords, exclude=exclusions, seed=st.integers(0, 2**32 - 1))
def test_ranking_is_deterministic_whatever_the_order_of_the_papers(words, exclude, seed):
    shuffled = list(papers())
    random.Random(seed).shuffle(shuffled)
    first = rank(index(), reader(words, exclude))
    assert rank(index(), reader(words, exclude)) == first
    assert rank(build_index(shuffled), reader(words, exclude)) == first


@FAST
@given(words=keywords, extra=st.sampled_from(VOCABULARY), popularity=st.sampled_from([0.0, 1.0, 5.0]))
def test_adding_a_keyword_never_lowers_a_score(words, extra, popularity):
    before = scores(rank(index(), reader(words, popularity=popularity), min_score=0))
    after = scores(rank(index(), reader([*words, extra], popularity=popularity), min_score=0))
    assert before.keys() <= after.keys()
    assert all(after[key] >= before[key] - 1e-9 for key in before)


@FAST
@given(words=keywords, exclude=exclusions, delivered=st.sets(st.sampled_from([p.id for p in papers()])))
def test_an_excluded_paper_never_appears(words, exclude, delivered):
    found = {item.paper.id for item in rank(index(), reader(words, exclude), exclude_ids=delivered)}
    assert not found & delivered
    for word in exclude:  # exclusions are exact: the papers the word matches as a whole keyword
        matching = {item.paper.id for item in rank(index(), reader([word]), min_score=0, graded=False)}
        assert not found & matching, word


@FAST
@given(words=keywords, popularity=st.sampled_from([0.0, 1.0, 10.0]))
def test_results_are_ordered_matched_and_above_the_minimum(words, popularity):
    found = rank(index(), reader(words, popularity=popularity))
    order = [(-item.score, -item.paper.upvotes, item.paper.id) for item in found]
    assert order == sorted(order)
    assert all(item.score >= 0.5 and item.matches for item in found)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_keyword_parses_or_raises_query_error(text):
    try:
        term = parse_keyword(text)
    except QueryError as exc:
        assert exc.keyword == text and repr(text) in str(exc)
    else:
        assert term.words and 0.1 <= term.weight <= 10


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet='"^-: .,0123456789titleabsRLé\u00a0ﬁ', max_size=12), max_size=4))
def test_any_keyword_list_in_the_syntax_alphabet_parses_or_raises_query_error(texts):
    try:
        parse_query(texts)
    except QueryError as exc:
        assert exc.keyword in texts


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_spans_line_up_with_stems_for_any_text(text):
    found, (begins, ends) = stems(text), spans(text)
    assert len(found) == len(begins) == len(ends)
    assert all((stemmed is None) == (begin < 0) for stemmed, begin in zip(found, begins))


@settings(max_examples=200, deadline=None)
@given(text=st.text(), terms=st.lists(st.text(max_size=10), max_size=3), width=st.integers(10, 400))
def test_a_snippet_never_exceeds_its_width(text, terms, width):
    assert len(snippet(text, terms, width)) <= max(width, 0)


sentences = st.lists(
    st.tuples(
        st.sampled_from(["Deep", "reinforcement", "learning", "LLMs", "multi-agent", "world", "GPT-3.5"]),
        st.sampled_from([" ", " ", "-", ", ", ". ", " (", ") ", "; ", "/"]),
    ),
    min_size=2, max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(sentences)
@example([("Deep", "-"), ("multi-agent", " "), ("learning", " "), ("multi-agent", " "), ("learning", " ")])
@example([("Deep", "-"), ("multi-agent", " "), ("multi-agent", " "), ("multi-agent", " ")])
def test_adjacent_words_as_a_keyword_find_the_paper_and_highlight_its_spelling(parts):
    text = "".join(word + gap for word, gap in parts).strip()
    index = build_index([Paper(id="p", title="t", abstract=text, listed=date(2024, 6, 3))])
    before = [None, *(gap for _, gap in parts)]
    for (first, gap), (second, _), joined in zip(parts, parts[1:], before):
        if gap.strip() not in ("", "-", "/"):
            continue  # punctuation between them: not a phrase
        if joined == "-":
            continue  # "first" continues a compound ("real-world models"): no phrase starts there
        found = rank(index, reader([f'"{first} {second}"']), min_score=0)
        assert [item.paper.id for item in found] == ["p"], (first, second)
        for term in found[0].matches[0].terms:
            assert term in text


# --- the optimised ranking against a straightforward one ---------------------------------
# rank() sums cached per-keyword scores in C, keeps only candidates near the cut, explains
# only the winners and cuts snippets from caches; the reference below scores every paper
# for every keyword from the documented formula, sorts them all and explains from the token
# lists. Both must agree exactly: scores, order, matches and snippets.

def reference_rank(index, reader, exclude_ids=frozenset(), limit=None, min_score=MIN_SCORE, graded=False,
                   neighbours=False):
    """Exact matching (``graded=False``: the ranking before issue 11) or graded phrases:
    per field the best of the whole keyword and its parts (times their credit), and with
    ``neighbours`` the thesaurus's neighbours as parts too (related papers on, but no related
    model); a paper no keyword matches exactly needs the non-exact threshold."""
    query = parse_query(reader.keywords, reader.exclude)
    if not neighbours:
        query = Query(tuple(term.without_neighbours() for term in query.terms), query.exclusions)
    limit = reader.max_papers if limit is None else limit
    excluded = set(exclude_ids)
    for term in query.exclusions:
        hits = index.hits(term)
        excluded |= {index.papers[number].id for number in [*hits.title, *hits.abstract]}
    concept = reference_concepts(index, query.terms)
    found = []
    for number, paper in enumerate(index.papers):
        relevance, matches, exact = 0.0, [], False
        per_concept: dict[int, float] = {}  # per concept (its first keyword), the best weighted score
        for n, term in enumerate(query.terms):
            hits = index.hits(term)
            levels = [(1.0, hits)] + ([(part.credit, level) for part, level in index.graded(term)] if graded else [])
            score = 0.0
            for field, weight in ((1, 1.0), (0, 3.0)):  # abstract first, as the formula adds
                best = 0.0
                for credit, level in levels:
                    counts, phrase = (level.abstract, level.abstract_phrase) if field else (level.title, level.title_phrase)
                    if number in counts:
                        best = max(best, ((weight * credit) * (1.5 if number in phrase else 1.0)) * saturate(counts[number]))
                score += best
            if not score:
                continue
            exact = exact or number in hits.title or number in hits.abstract
            per_concept[concept[n]] = max(per_concept.get(concept[n], 0.0), term.weight * score)
            matches.append(reference_match(paper, term, hits, number) if not graded else
                           index.explain_levels(term, level_scores(index, term, number), number))
        for first in sorted(per_concept):  # added in the order of each concept's first keyword
            relevance += per_concept[first]
        if graded and not exact and relevance < PARTIAL_MIN:
            continue
        total = round(relevance + reader.popularity * 0.25 * math.log1p(max(paper.upvotes, 0)), 6)
        if matches and paper.id not in excluded and total >= min_score:
            found.append((total, paper, tuple(matches)))
    found.sort(key=lambda item: (-item[0], -item[1].upvotes, item[1].id))
    return [
        RankedPaper(paper, total, matches, snippet(
            paper.abstract, [term for match in matches if "abstract" in match.fields for term in match.terms]
        ))
        for total, paper, matches in found[:max(limit, 0)]
    ]


def reference_concepts(index, terms) -> list[int]:
    """Per keyword, the first keyword of its concept: keywords of the same field whose
    spellings overlap, directly or through other keywords of the list, name one concept."""
    first = list(range(len(terms)))
    spellings = [set(index.variants(term.words)) for term in terms]
    changed = True
    while changed:
        changed = False
        for a in range(len(terms)):
            for b in range(a + 1, len(terms)):
                if (terms[a].field == terms[b].field and spellings[a] & spellings[b]
                        and first[b] != first[a]):
                    low = min(first[a], first[b])
                    old = {first[a], first[b]}
                    first = [low if f in old else f for f in first]
                    changed = True
    return first


def reference_match(paper, term, hits, number) -> Match:
    fields = tuple(name for name, counts in zip(FIELDS, (hits.title, hits.abstract)) if number in counts)
    spelled = []
    for name in fields:
        text = paper.title if name == "title" else paper.abstract
        slots, begins, ends = token_slots(text)
        for variant in hits.variants:
            size = len(variant)
            at = [k for k in range(len(slots) - size + 1) if tuple(slots[k:k + size]) == variant]
            if hits.base and variant == hits.based:  # a one-word keyword: its own word only
                at = [k for k in at if hits.base in map(inflection_base, normalise(text[begins[k]:ends[k]]))]
            shown = at[:5] if size > 2 else at[:1] + at[-1:]
            spelled += [text[begins[k]:ends[k + size - 1]] for k in shown]
    return Match(term.keyword, fields, tuple(dict.fromkeys(spelled)))


@cache
def token_slots(text: str) -> tuple[list, list[int], list[int]]:
    return stems(text), *spans(text)


@cache
def corpus_vocabulary() -> list[str]:
    """Words, adjacent pairs and acronyms of the seed papers, as a subscriber might write them."""
    found = set(BUILTIN_WORDS)
    for paper in papers():
        tokens = re.findall(r"[A-Za-z][\w-]*", f"{paper.title} {paper.abstract}")
        found.update(token for token in tokens if len(token) > 2)
        found.update(f"{a} {b}" for a, b in zip(tokens, tokens[1:]) if len(a) > 3 and len(b) > 3)
    return sorted(found)


BUILTIN_WORDS = ("RL", "LLM", "MoE", "GAN", "DSI", "reinforcement learning", "mixture of experts",
                 "large language models", "multi-agent", "multiagent", "world model",
                 # thesaurus phrases (flows.rank.thesaurus), whose groups the seed papers use
                 "deep reinforcement learning", "policy gradient", "actor-critic", "reward model",
                 "RLHF", "continual learning", "catastrophic forgetting", "offline RL", "LLM reasoning")


# Keywords that name one concept (a paper writing either counts once, as the better one)
SAME_CONCEPT = (("MoE", "mixture of experts"), ("RL", "reinforcement learning"),
                ("large language models", "LLM"), ("RLHF", "reinforcement learning from human feedback"),
                ("multi-agent", "multiagent"), ("RL", "reinforcement learning", "offline RL"))


def random_reader(rng: random.Random, vocabulary: list[str]) -> Subscriber:
    keywords = []
    words = rng.sample(vocabulary, rng.randint(1, 10))
    if rng.random() < 0.3:  # one concept written twice, in other places of the list
        for word in rng.choice(SAME_CONCEPT):
            words.insert(rng.randint(0, len(words)), word)
    for word in words:
        prefix = rng.choice(["", "", "", "", "title:", "abstract:"])
        weight = rng.choice(["", "", "", "", "^2", "^0.5", "^10", "^0.1"])
        keywords.append(f'{prefix}"{word}"{weight}' if prefix or weight else word)
    exclude = rng.sample(vocabulary, rng.choice([0, 0, 0, 1, 2]))
    return Subscriber.model_construct(
        email="r@example.org", keywords=keywords, exclude=exclude, max_papers=rng.choice([5, 20, 20, 100]),
        popularity=rng.choice([0.0, 1.0, 1.0, 2.0, 10.0]), include_trending=False,
    )


def check_against_reference(index, rng, vocabulary, count, graded=False, neighbours=False):
    """``neighbours``: related papers on ("near") in an index without a related model, so
    graded phrases and the thesaurus's neighbours, and no related evidence."""
    assert index.related is None
    readers, delivered = [], {}
    mode = {"graded": graded, "related": "near" if neighbours else "off"}
    graded = {"graded": graded, "neighbours": neighbours}
    for n in range(count):
        reader = random_reader(rng, vocabulary).model_copy(update={"email": f"r{n}@example.org"})
        seen = set(rng.sample([p.id for p in index.papers], rng.choice([0, 0, 3, 20])))
        expected = reference_rank(index, reader, seen, **graded)
        assert rank(index, reader, exclude_ids=seen, **mode) == expected, reader.keywords
        assert rank(index, reader, exclude_ids=seen, limit=3, min_score=0.0, **mode) == reference_rank(
            index, reader, seen, limit=3, min_score=0.0, **graded)
        readers.append(reader)
        delivered[reader.email] = seen
    batch = rank_many(index, readers, delivered=delivered, **mode)  # warm caches, GC paused: same results
    for reader in readers:
        assert batch[reader.email] == reference_rank(index, reader, delivered[reader.email], **graded)


MODES = pytest.mark.parametrize("graded, neighbours", [(False, False), (True, False), (True, True)],
                                ids=["exact", "graded", "neighbours"])


@MODES
def test_rank_equals_a_straightforward_reference_on_the_seed_papers(graded, neighbours):
    check_against_reference(index(), random.Random(20240603), corpus_vocabulary(), 300, graded, neighbours)


@MODES
def test_rank_equals_the_reference_where_many_papers_compete_for_the_list(graded, neighbours):
    synthetic = synthetic_papers([{"title": p.title, "abstract": p.abstract, "upvotes": p.upvotes}
                                  for p in papers()], 400, random.Random(5))
    check_against_reference(build_index(synthetic), random.Random(7), corpus_vocabulary(), 60, graded, neighbours)


# --- the shortcuts behind the speed agree with the plain definitions ----------------------

EXCERPT_WORDS = ["Deep", "deep", "learning", "LLMs", "multi-agent", "agent", "agents", "RL", "world",
                 "a", "x", "data", "İstanbul", "ıdea", "ſtar", "\u212aelvin", "kelvin", "Straße", "né"]


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(st.tuples(st.sampled_from(EXCERPT_WORDS),
                             st.sampled_from([" ", "  ", "-", ", ", ". ", "\n", " (", ") ", "_"])),
                   max_size=60),
    terms=st.lists(st.one_of(st.sampled_from(EXCERPT_WORDS + ["deep learning", "multi-agent RL", " "]),
                             st.text(max_size=6)), max_size=4),
    width=st.integers(10, 120),
)
def test_excerpts_cut_what_snippet_cuts(parts, terms, width):
    text = "".join(word + gap for word, gap in parts)
    assert Excerpts([text], width).snippet(0, tuple(terms)) == snippet(text, terms, width)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_stems_and_spans_is_stems_and_spans(text):
    assert stems_and_spans(text) == (stems(text), *spans(text))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcXYZ019 -", max_size=20))
def test_plain_keywords_parse_as_the_full_grammar_parses_them(keyword):
    try:
        expected = _parse_keyword(keyword, negated=False)
    except QueryError:
        expected = None
    if expected is None:
        with pytest.raises(QueryError):
            parse_keyword.__wrapped__(keyword)
    else:
        assert parse_keyword.__wrapped__(keyword) == expected
