"""Licences of the built-in training sources, whether each allows commercial use, and the trained model's licence.

The project is Apache-2.0 and the default model must be usable by a company, so the default recipe trains only on
sources marked ``commercial=True``; a source marked ``False`` is refused unless ``--research=true`` is given, and
then the model card says the model is for research / non-commercial use only.

How each source was classified (conservatively: when the rights to the *texts* are unclear, it is ``False``).
Share-alike (CC BY-SA) data may be used to train a model for commercial use; share-alike binds redistribution of
the data or of adaptations of it, and we never redistribute the data (``data/`` is git-ignored). Attribution
is given in the model card (every source with its licence and origin).

* squad_shifts (wiki, new_wiki domains): SQuAD v1.1 dev (CC BY-SA 4.0) and SQuADShifts' New Wikipedia set
  (annotations CC BY 4.0, paragraphs from Wikipedia, CC BY-SA) -> commercial.
* squad_shifts_web (reddit, amazon domains): SQuADShifts declares CC BY 4.0, but that covers the crowd-written
  questions; the paragraphs are Reddit comments and Amazon product reviews, whose authors and platforms never
  licensed them for reuse (Reddit's terms restrict commercial use of its content) -> not commercial.
* vitaminc: VitaminC, CC BY-SA 3.0 (claims written over Wikipedia revisions) -> commercial.
* gem: XSum (BBC articles, research use only), WikiLingua (CC BY-NC-SA 3.0), MLSUM (research only) -> not.
* multiemo: MultiEmo is PolEmo 2.0 (CC BY-NC-SA 4.0) machine-translated into 10 languages; the translations are
  adaptations and keep the NC clause -> not commercial.
* disfl_qa: Disfl-QA, CC BY 4.0 (annotations) over SQuAD 2.0 Wikipedia paragraphs (CC BY-SA 4.0) -> commercial.
* paragraph: BIG-bench paragraph_segmentation, Wikipedia paragraphs (CC BY-SA 3.0) -> commercial.
* chatterbot: chatterbot-corpus 1.3.3, BSD-3-Clause -> commercial.
* wordnet: Princeton WordNet 3.0 licence (use, copy, modify and distribute for any purpose) -> commercial.
* django_l10n: the message catalogues (``.po``) inside the Django wheel on PyPI: Django is BSD-3-Clause and every
  catalogue's header says "This file is distributed under the same license as the Django package" (translators
  contribute under it) -> commercial. Short UI strings (form errors, admin labels, dates) in ~95 locales.

Looked for and not used: Tatoeba (CC BY 2.0 FR) is on PyPI only as downloaders (``tatoebatools``,
``kabyle-corpus-toolkit`` fetch from tatoeba.org at run time), so it is no offline source; no other PyPI package
was found to ship multilingual parallel or question-answer text with a clear permissive licence.

SciFact (CC BY-NC 2.0) is no source at all: the whole collection is held out for evaluation (trainer.heldout).
The base model, all-MiniLM-L6-v2, is Apache-2.0; it is also the consistency-filter teacher and the miner.
"""

from __future__ import annotations

from dataclasses import dataclass

BIGBENCH = "pip sdist bigbench==1.0.0"
BASE_LICENCE = "Apache-2.0"


@dataclass(frozen=True)
class Licence:
    licence: str  # the licence as its distributors state it
    commercial: bool  # may a model trained on it be used commercially (conservative reading, see above)
    origin: str  # where the build step gets it

    def __post_init__(self) -> None:
        if not self.licence or not self.origin:
            raise ValueError("licence and origin must be non-empty")


LICENCES: dict[str, Licence] = {
    "squad_shifts": Licence("CC BY-SA 4.0 (SQuAD v1.1 dev) / CC BY 4.0 over Wikipedia (SQuADShifts new_wiki); "
                            "Miller et al. 2020", True, f"{BIGBENCH}: squad_shifts (wiki, new_wiki)"),
    "squad_shifts_web": Licence("CC BY 4.0 annotations over Reddit comments and Amazon reviews (no licence to the "
                                "texts; research only)", False, f"{BIGBENCH}: squad_shifts (reddit, amazon)"),
    "vitaminc": Licence("CC BY-SA 3.0 (VitaminC, Schuster et al. 2021; Wikipedia text)", True,
                        f"{BIGBENCH}: vitaminc_fact_verification"),
    "gem": Licence("non-commercial: XSum (research use), WikiLingua (CC BY-NC-SA 3.0), MLSUM (research only), "
                   "via GEM", False, f"{BIGBENCH}: gem/{{xsum,wikilingua_en,wikilingua_multilingual,mlsum_de,"
                                     "mlsum_es}"),
    "multiemo": Licence("CC BY-NC-SA 4.0 (MultiEmo = PolEmo 2.0 translated, Kocon et al. 2021)", False,
                        f"{BIGBENCH}: multiemo/all_text_*"),
    "disfl_qa": Licence("CC BY 4.0 (Disfl-QA, Gupta et al. 2021) over SQuAD 2.0 Wikipedia text (CC BY-SA 4.0)",
                        True, f"{BIGBENCH}: disfl_qa"),
    "paragraph": Licence("CC BY-SA 3.0 (Wikipedia paragraphs)", True, f"{BIGBENCH}: paragraph_segmentation"),
    "chatterbot": Licence("BSD-3-Clause (chatterbot-corpus)", True, "pip chatterbot-corpus==1.3.3"),
    "wordnet": Licence("WordNet 3.0 licence (Princeton; any purpose)", True, "Debian package wordnet-base"),
    "django_l10n": Licence("BSD-3-Clause (Django, its translations under the same licence)", True,
                           "pip wheel django==5.2.20: django/**/locale/*/LC_MESSAGES/*.po"),
}
ALL_SOURCES = tuple(LICENCES)
COMMERCIAL_SOURCES = tuple(s for s, lic in LICENCES.items() if lic.commercial)
USER_LICENCE = "user-supplied (not verified by moesearch)"


def check_sources(sources, research: bool) -> None:
    """ValueError naming every requested source whose licence does not allow commercial use (unless research)."""
    unknown = sorted(set(sources) - set(LICENCES))
    if unknown:
        raise ValueError(f"unknown data sources {unknown}; allowed: {ALL_SOURCES}")
    bad = [s for s in sources if not LICENCES[s].commercial]
    if bad and not research:
        named = "; ".join(f"{s}: {LICENCES[s].licence}" for s in bad)
        raise ValueError(f"data sources not licensed for commercial use: {named}. A model trained on them is for "
                         f"research only: pass --research=true to train on them anyway, or drop them "
                         f"(commercial sources: {list(COMMERCIAL_SOURCES)})")


def used_licences(manifest: dict, used: list[str]) -> dict[str, dict]:
    """{stem: {source, licence, commercial, origin}} of the manifest entries a run trained on."""
    out = {}
    for stem in used:
        info = manifest.get("sources", {}).get(stem, {})
        lic = LICENCES.get(info.get("source", ""))
        out[stem] = {"source": info.get("source", stem), "licence": info.get("licence", USER_LICENCE),
                     "commercial": bool(info.get("commercial", lic.commercial if lic else False)),
                     "origin": info.get("origin", "")}
    return out


def model_licence(used: dict[str, dict]) -> str:
    """The licence statement of a model trained on ``used`` (from `used_licences`)."""
    non_commercial = {s: u["licence"] for s, u in used.items() if not u["commercial"]
                      and u["licence"] != USER_LICENCE}
    user = sorted(s for s, u in used.items() if u["licence"] == USER_LICENCE)
    if non_commercial:
        named = "; ".join(f"{s} ({lic})" for s, lic in sorted(non_commercial.items()))
        text = (f"Research / non-commercial use only: trained on data whose licences do not allow commercial use: "
                f"{named}.")
    else:
        text = (f"{BASE_LICENCE} (the base, all-MiniLM-L6-v2, is {BASE_LICENCE}); every built-in training source "
                "allows commercial use (attribution and licences in the table above).")
    if user:
        text += f" Also trained on user-supplied data ({', '.join(user)}), whose licence is the user's to check."
    return text
