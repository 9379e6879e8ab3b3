"""British and American spellings of one word meet: "optimisation" = "optimization".

Keywords and papers are folded alike (:func:`flows.rank.text.stem` and
:func:`flows.rank.text.inflection_base` call :func:`american` first), so a researcher who
writes ``preference optimisation`` finds the papers that write "preference optimization",
and ``nearest neighbors`` finds "nearest neighbours". Snowball's English stemmer folds
neither ("optimis" against "optim", "behaviour" against "behavior").

What folds, on one normalised (case-folded) word:

- ``-ise``/``-isation`` verbs and nouns to ``-ize``/``-ization`` ("normalised",
  "tokenisers", "generalisation"), unless the word is one that English writes with
  ``-ise`` on both sides of the Atlantic ("supervised", "promise", "expertise", "noise",
  "denoising", "pairwise", "precise", …: :data:`ISE_BOTH`, with the prefixes of
  :data:`PREFIXES`), or its root is shorter than four letters ("rise", "raise", "devise"),
  where a wrong fold would cost most;
- ``-yse`` to ``-yze`` ("analyse", "catalysed", "paralysing");
- ``-our`` to ``-or`` for the words that take it (:data:`OUR_WORDS`: "behaviour",
  "neighbours", "colourful", "favourite"), never "four", "source" or "our";
- ``-tre`` to ``-ter`` (:data:`TRE_WORDS`: "centre", "centred", "fibres", "metres"),
  ``-ogue`` to ``-og`` ("dialogue", "catalogue"; both spellings are common in American
  papers too), and a few single words ("programme", "judgement", "licence", "grey");
- medical ``ae``/``oe`` ("haemoglobin", "oesophageal", "paediatric", "ischaemic").

Only listed words or the regular endings above fold, so a fold never makes two different
words one ("expertise" stays apart from "experts", "noise" from "no"). Every rule is a
suffix test or a scan of a short list: constant work per word (the callers cache by word).
"""

from __future__ import annotations

# Words written with -ise in American English too (and their -ising/-ised/-ises forms):
# never folded to -ize.
ISE_BOTH = frozenset("""
    advertise advise apprise appraise arise braise bruise chastise chemise circumcise
    comprise compromise concise cruise demise denoise despise devise disguise enfranchise
    enterprise excise exercise expertise franchise guise improvise incise malaise
    mayonnaise merchandise mortise noise otherwise paradise poise porpoise praise precise
    premise promise prise raise reprise revise rise sunrise supervise surmise surprise
    televise tortoise treatise turquoise valise vise wise
""".split())
# Told by their ending alone ("weaklysupervised", "antinoise", "centipoise"); a shorter
# one such as "rise" also ends words that do fold ("categorise").
_LONG_ISE_BOTH = tuple(sorted(word for word in ISE_BOTH if len(word) >= 6)) + ("noise", "poise")
PREFIXES = ("", "un", "de", "re", "pre", "self", "semi", "non", "co", "im", "over", "under", "mis", "up")
_ISE_ENDINGS = (  # longest first; each with its American form
    ("isations", "izations"), ("isation", "ization"), ("isers", "izers"), ("iser", "izer"),
    ("ising", "izing"), ("ised", "ized"), ("ises", "izes"), ("ise", "ize"),
    ("isable", "izable"),
)
_YSE_ENDINGS = (("ysing", "yzing"), ("ysed", "yzed"), ("ysers", "yzers"), ("yser", "yzer"),
                ("yses", "yzes"), ("yse", "yze"))
_YSE_ROOTS = ("anal", "paral", "catal", "hydrol", "electrol", "dial", "autol", "photol", "pyrol")

# -our words (any word containing one of these folds it: "neighbourhood", "behavioural").
OUR_WORDS = (
    "arbour", "ardour", "armour", "behaviour", "candour", "clamour", "colour", "demeanour",
    "endeavour", "favour", "fervour", "flavour", "harbour", "honour", "humour", "labour",
    "neighbour", "odour", "parlour", "rancour", "rigour", "rumour", "saviour", "savour",
    "splendour", "succour", "tumour", "valour", "vapour", "vigour",
)
# -tre words: root → American root, folded before the endings "e", "es", "ed", "ing".
TRE_WORDS = {
    "centr": "center", "fibr": "fiber", "litr": "liter", "metr": "meter", "theatr": "theater",
    "spectr": "specter", "calibr": "caliber", "lustr": "luster", "sombr": "somber",
    "meagr": "meager", "sabr": "saber", "sceptr": "scepter", "mitr": "miter",
    "manoeuvr": "maneuver",
}
_TRE_ENDINGS = (("ing", "ing"), ("es", "s"), ("ed", "ed"), ("e", ""))
_OGUE_WORDS = ("analogue", "catalogue", "dialogue", "epilogue", "monologue", "prologue", "travelogue")
WORDS = {
    "programme": "program", "programmes": "programs", "judgement": "judgment",
    "judgements": "judgments", "acknowledgement": "acknowledgment",
    "acknowledgements": "acknowledgments", "licence": "license", "licences": "licenses",
    "defence": "defense", "defences": "defenses", "offence": "offense", "offences": "offenses",
    "grey": "gray", "greyscale": "grayscale", "ageing": "aging", "fulfil": "fulfill",
    "fulfils": "fulfills", "fulfilment": "fulfillment", "enrolment": "enrollment",
    "skilful": "skillful", "aluminium": "aluminum", "sulphur": "sulfur", "mould": "mold",
    "moulds": "molds", "moulding": "molding", "plough": "plow", "artefact": "artifact",
    "artefacts": "artifacts", "sceptical": "skeptical", "sceptic": "skeptic",
}
# Medical ae/oe spellings, as parts of words ("haematology", "oesophageal").
_PARTS = (
    ("anaesth", "anesth"), ("haem", "hem"), ("anaem", "anem"), ("ischaem", "ischem"),
    ("glycaem", "glycem"), ("leukaem", "leukem"), ("septicaem", "septicem"),
    ("orthopaed", "orthoped"), ("encyclopaed", "encycloped"), ("paediatr", "pediatr"),
    ("oesophag", "esophag"), ("oestrogen", "estrogen"), ("oedema", "edema"), ("foetus", "fetus"),
    ("foetal", "fetal"), ("gynaecolog", "gynecolog"), ("diarrhoea", "diarrhea"),
    ("dyspnoea", "dyspnea"), ("apnoea", "apnea"), ("coeliac", "celiac"),
)
_MIN_ISE_ROOT = 4  # "rise", "raise", "devise": a short root is too often another word


def american(word: str) -> str:
    """The American spelling of one normalised word (the word itself if none applies)."""
    if (found := WORDS.get(word)) is not None:
        return found
    if "is" in word:
        for british, us in _ISE_ENDINGS:
            if word.endswith(british):
                root = word[: -len(british)]
                if len(root) >= _MIN_ISE_ROOT and not _writes_ise(root + "ise"):
                    return root + us
                break
    if "ys" in word:
        for british, us in _YSE_ENDINGS:
            if word.endswith(british) and word[: -len(british)].endswith(_YSE_ROOTS):
                return word[: -len(british)] + us
    if "our" in word:
        for british in OUR_WORDS:
            if british in word:
                return word.replace(british, british[:-2] + "r")
    if "r" in word:
        for british, us in _TRE_ENDINGS:
            if word.endswith(british):
                root = word[: -len(british)]
                for tre, american_root in TRE_WORDS.items():
                    if root.endswith(tre):
                        return root[: -len(tre)] + american_root + us
                break
    if "ogue" in word:
        for british in _OGUE_WORDS:
            if british in word:
                return word.replace(british, british[:-2])
    if "ae" in word or "oe" in word:
        for british, us in _PARTS:
            if british in word:
                return word.replace(british, us)
    return word


def _writes_ise(base: str) -> bool:
    """Whether a word ending in -ise is written so in American English too."""
    if base.endswith("wise"):  # "pairwise", "otherwise", "clockwise"
        return True
    if base.endswith(_LONG_ISE_BOTH):  # "weaklysupervise", "imprecise" (joined forms too)
        return True
    return any(base.startswith(prefix) and base[len(prefix):] in ISE_BOTH for prefix in PREFIXES)
