"""The token view's route answers with the positions the word nodes use: ``locate_words`` on the checkpoint's own
CLIP gives the same positions for every word the route finds, and the words it reports missing are the ones the
nodes refuse."""

import pytest
import requests

PROMPT = "a photo of a [I] lady with glasses, santa claus (red:1.2) hat"
WORDS = ["lady", "glasses", "[I]", "santa claus", "red", "dog"]


def ask(server, **body):
    return requests.post(f"{server.url}/precise_edit/tokens", json=body, timeout=60)


def test_route_finds_words_where_the_nodes_do(comfy_server, sd15):
    from precise_edit.nodes.attention.prompt_tokens import locate_words

    answer = ask(comfy_server, text=PROMPT, family="sd1", words=WORDS)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["missing"] == ["dog"]
    for word, positions in body["found"].items():
        assert positions == locate_words(sd15.clip, PROMPT, word).words[word], word
    with pytest.raises(ValueError, match="'dog' is not in the prompt"):
        locate_words(sd15.clip, PROMPT, "dog")
    chips = {chip["text"]: chip["positions"] for chip in body["words"]}
    assert chips["[I]"] == body["found"]["[I]"] == [5, 6, 7]
    assert chips["glasses"] == [*body["found"]["glasses"], body["found"]["glasses"][-1] + 1]  # "glasses," + comma
    assert [t["text"] for t in body["tokens"][:4]] == ["a", "photo", "of", "a"]
    assert body["context_length"] == 77


@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_every_family_places_words_like_clip_l(comfy_server, family):
    """SD2's CLIP-H and SDXL's CLIP-L/G tokenizers share CLIP-L's vocabulary: the same positions."""
    reference = ask(comfy_server, text=PROMPT, family="sd1", words=WORDS).json()
    answer = ask(comfy_server, text=PROMPT, family=family, words=WORDS).json()
    assert (answer["found"], answer["missing"]) == (reference["found"], reference["missing"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": "a cat", "family": "t5"}, "family: expected one of sd1, sd2, sdxl, got 't5'"),
        ({"text": 3}, "text: expected a string"),
        ({"text": "a cat", "words": "cat"}, "words: expected a list of strings"),
    ],
)
def test_route_names_the_bad_field(comfy_server, body, message):
    answer = ask(comfy_server, **body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
