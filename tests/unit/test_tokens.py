import os
import subprocess
import sys

from ragroute.tools.tokens import count_tokens, truncate_tokens


def test_counts_match_known_cl100k_ids():
    # "hello world" is two tokens in cl100k_base: [15339, 1917]
    from ragroute.tools.tokens import encoding

    assert encoding().encode("hello world") == [15339, 1917]
    assert count_tokens("hello world") == 2


def test_truncate_keeps_prefix():
    text = "one two three four five six seven"
    cut = truncate_tokens(text, 3)
    assert text.startswith(cut) and count_tokens(cut) == 3


def test_loads_in_fresh_process_with_empty_cache_and_no_network(tmp_path):
    # a fresh cache dir and a proxy that cannot connect: any download attempt fails loudly
    env = dict(
        os.environ,
        TIKTOKEN_CACHE_DIR=str(tmp_path / "tk"),
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ragroute.tools.tokens import count_tokens; print(count_tokens('a b c'))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "3"
