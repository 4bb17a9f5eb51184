"""The FineWeb-Edu prompt: shipped verbatim, versioned, and given the start of each document only."""

import gzip
import hashlib
import json

import pytest

from winnow.classifiers.prompt import DOCUMENT_PLACEHOLDER, FINEWEB_EDU_MAX_CHARS, PROMPTS_DIR, load_prompt


@pytest.fixture(scope="module")
def long_document(shared_data) -> str:
    """A real FineWeb document (Llama-3-annotated) longer than FineWeb-Edu's truncation."""
    with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / "val.jsonl.gz", "rt") as f:
        for line in f:
            text = json.loads(line)["text"]
            if len(text) > 3 * FINEWEB_EDU_MAX_CHARS:
                return text
    pytest.fail("no long document in the shared annotations")


def test_shipped_prompt_is_the_fineweb_edu_prompt_verbatim():
    prompt = load_prompt()
    assert prompt.version == "fineweb_edu_v1"
    # any edit of the shipped file must become a new version (a new file), never a silent change of v1
    text = (PROMPTS_DIR / "fineweb_edu_v1.txt").read_bytes()
    assert hashlib.sha256(text).hexdigest() == "bfc546e0d9189d9d4275cf57bb52367c38261fb4acd386c5367906899df19b52"
    assert prompt.template.startswith(
        "Below is an extract from a web page. Evaluate whether the page has a high educational value"
    )
    assert "using the additive 5-point scoring system described below" in prompt.template
    assert prompt.template.count("\n- ") == 7  # five criteria, then the two closing instructions
    assert prompt.template.endswith('Conclude with the score using the format: "Educational score:  <total points>"\n')
    assert prompt.template.count(DOCUMENT_PLACEHOLDER) == 1


def test_render_keeps_only_the_first_characters_of_the_document(long_document):
    prompt = load_prompt()
    rendered = prompt.render(long_document)
    kept = long_document[:FINEWEB_EDU_MAX_CHARS]
    assert f"The extract:\n{kept}.\n" in rendered
    assert long_document[FINEWEB_EDU_MAX_CHARS : FINEWEB_EDU_MAX_CHARS + 200] not in rendered
    assert DOCUMENT_PLACEHOLDER not in rendered
    assert len(rendered) == len(prompt.template) - len(DOCUMENT_PLACEHOLDER) + FINEWEB_EDU_MAX_CHARS


def test_truncation_is_configurable(long_document):
    assert load_prompt(max_chars=1500).render(long_document).count(long_document[:1500]) == 1
    whole = load_prompt(max_chars=0).render(long_document)
    assert long_document in whole


def test_a_prompt_file_is_versioned_by_its_content(tmp_path, long_document):
    path = tmp_path / "short_edu.txt"
    path.write_text("Rate this page for teaching, 0 to 5.\n<EXAMPLE>\nEnd with 'Educational score: N'.\n")
    first = load_prompt(str(path))
    assert first.version.startswith("short_edu-") and first.version != "short_edu"
    assert first.render("Plants need light.").startswith("Rate this page for teaching, 0 to 5.\nPlants need light.")
    path.write_text(path.read_text().replace("0 to 5", "from 0 to 5"))
    assert load_prompt(str(path)).version != first.version


def test_bad_prompt_files_are_refused(tmp_path):
    no_placeholder = tmp_path / "p.txt"
    no_placeholder.write_text("Rate this page.")
    with pytest.raises(ValueError, match="<EXAMPLE>"):
        load_prompt(str(no_placeholder))
    with pytest.raises(FileNotFoundError, match="fineweb_edu_v1"):
        load_prompt("fineweb_edu_v9")
