"""Scripted answers for the shipped notebooks, so that they read well offline.

``FakeOpenRouter(demo=True)`` (and ``python -m ormagic.testing``) answers the questions
of ``notebooks/quickstart.ipynb``, ``data-analysis.ipynb`` and ``teaching.ipynb`` the way
a model would: with reasoning, tool calls that look at the notebook's data, code blocks,
structured rows and different answers from different models. Any other question gets the
fake's usual echo. The answers are written for the notebooks' data; they are canned
text, not a model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._replies import Reply, StreamReply, content_text, request_messages
from ._tools import ToolCall

__all__ = ["demo_reply"]

_Rule = tuple[Sequence[str], Callable[[str], Reply]]


def _last_user(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _question(messages: Sequence[Mapping[str, Any]]) -> str:
    """The question: the last paragraph (ormagic puts the notebook context before it)."""
    return _last_user(messages).strip().split("\n\n")[-1].strip()


def _tool_names(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    names = []
    for message in messages:
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                names.append(str(function.get("name")))
    return names


# -- quickstart ------------------------------------------------------------------------

_MEAN_MEDIAN = """The **mean** adds everything up and divides by the count; the **median** is the \
middle value once the numbers are sorted.

| values | mean | median |
|---|--:|--:|
| 2, 3, 4, 5, 6 | 4 | 4 |
| 2, 3, 4, 5, 96 | 22 | 4 |

One extreme value drags the mean along, while the median does not move. In pandas:

```python
import pandas as pd
s = pd.Series([2, 3, 4, 5, 96])
s.mean(), s.median()   # (22.0, 4.0)
```
"""

_HOUSE_PRICES = """Report the **median**. House prices are skewed: a few very expensive \
homes pull the mean up, so the mean describes a house that hardly anyone buys. \
Official statistics (and most listing sites) quote the median price for that reason; \
if you show the mean as well, say that it is higher because of the top of the market."""


# -- data analysis -----------------------------------------------------------------------

_MARCH_ANSWER = """March is not missing rows: `value_counts` shows **4 rows for 2024-03**, \
one per region, like every other month. What is missing is the number: \
`describe_variable` shows that `units` has **4 nulls**, and they are those four March rows.

`groupby("month")["units"].sum()` adds up the non-missing values, and the sum of nothing is \
**0**, so March plots as a drop to zero. Nothing was sold-out or lost; the March figures \
were never recorded (the export for that month came in empty).

To plot March as a gap instead of a zero:

```python
monthly = sales.groupby("month")["units"].sum(min_count=1)   # NaN when a month has no data
monthly.plot(title="Units sold per month", marker="o")
```
"""

_NEXT_PLOT = """Compare the regions month by month, one line each, keeping March as a gap:

```python
per_region = sales.pivot_table(
    index="month", columns="region", values="units", aggfunc="sum", dropna=False
)
ax = per_region.plot(marker="o", title="Units per region and month")
ax.set_ylabel("units")
```
"""

_FIX = """The column is called `units`, not `unit`: `sales` has the columns `month`, \
`region` and `units`, so `sales.groupby("region")["unit"]` raises `KeyError`.

```python
by_region = sales.groupby("region")["units"].mean()
by_region.sort_values(ascending=False)
```
"""

_SENTIMENT = (
    ("negative", ("late", "crushed", "charged twice", "refund", "logging me out", "broken")),
    ("positive", ("great", "helpful", "lasts", "love")),
)
_TOPIC = (
    ("delivery", ("arrived", "box", "late")),
    ("billing", ("charged", "refund", "invoice")),
    ("app", ("app", "logging", "update")),
    ("support", ("support", "answered")),
)


def _label(text: str) -> dict[str, str]:
    lower = text.lower()
    sentiment = next((s for s, words in _SENTIMENT if any(w in lower for w in words)), "neutral")
    topic = next((t for t, words in _TOPIC if any(w in lower for w in words)), "product")
    return {"sentiment": sentiment, "topic": topic}


# -- teaching ---------------------------------------------------------------------------

_P_VALUE = """Imagine you flip a coin 10 times and get **9 heads**. If the coin were fair, \
how surprising would that be? The **p-value** answers exactly that: it is the chance of \
seeing a result at least as extreme as yours *if nothing special were going on*.

For 9 or more heads out of 10 with a fair coin, that chance is about **1%** (0.011). \
A small p-value says: "this would be rare if the coin were fair", so you start to doubt \
the coin. It does **not** tell you the probability that the coin is fair."""

_COIN = "Getting 9 heads in 10 flips of a fair coin happens about 1 time in 100: p ≈ 0.01."

_QUIZ = """**Question 1.** A study reports p = 0.03. Which statement is right?

- A. There is a 3% chance the null hypothesis is true.
- B. If the null hypothesis were true, results at least this extreme would happen 3% of \
the time.
- C. The effect is large.

Reply with A, B or C."""

_OVERFIT_FLASH = """Overfitting is when a model learns the noise of its training data \
instead of the pattern, so it scores very well on that data and badly on new data. You \
spot it when the training error keeps falling while the validation error starts rising."""

_OVERFIT_NANO = """An overfit model memorises its training examples, quirks included, \
like a student who learns the answer key rather than the method. It looks perfect in \
practice and fails the real test: new data."""

_CONFIDENCE = """Building on the coin: a **confidence interval** gives a range of plausible \
values for what you are estimating, instead of a yes/no surprise score.

After 9 heads in 10 flips, a 95% interval for the coin's chance of heads is roughly \
**0.55 to 1.00**. Where the p-value asked "how surprising is this if the coin is fair?", \
the interval says "these are the chances of heads that fit the data". Since 0.5 is \
outside it, it tells the same story as the small p-value, and also how far from fair \
the coin might be."""


# streamed at about a model's pace (~100 tokens a second), so times and rates read true
_PACE = {"chunk_chars": 16, "delay": 0.03}


def _reply(text: str, reasoning: str, **extra: Any) -> StreamReply:
    return StreamReply(text=text, reasoning=reasoning, provider="DeepSeek", **{**_PACE, **extra})


_RULES: list[_Rule] = [
    (
        ("difference between a mean and a median",),
        lambda q: _reply(
            _MEAN_MEDIAN,
            "The user wants the difference between mean and median. Define both in one "
            "sentence each, then show with a tiny table how one outlier moves the mean but "
            "not the median, and end with the pandas calls.",
        ),
    ),
    (
        ("house prices",),
        lambda q: _reply(
            _HOUSE_PRICES,
            "House prices are right-skewed: a few mansions pull the mean up. The median is "
            "what official statistics report. Recommend the median, mention the mean's bias.",
        ),
    ),
    (
        ("march", "low"),
        lambda q: _reply(
            "",
            "The user sees a dip in March. I should look at the data: describe the frame "
            "and count the rows per month.",
            tool_calls=[
                ToolCall("describe_variable", {"name": "sales"}),
                ToolCall("value_counts", {"name": "sales", "column": "month"}),
            ],
        ),
    ),
    (
        ("next plot",),
        lambda q: _reply(_NEXT_PLOT, "A line per region, with March kept as a gap."),
    ),
    (
        ("the last cell failed",),
        lambda q: _reply(_FIX, "KeyError 'unit': the column is 'units'."),
    ),
    (
        ("what is a p-value",),
        lambda q: _reply(
            _P_VALUE,
            "First-year students, no jargon. A coin is the easiest example: 9 heads in 10 "
            "flips. P(X >= 9) under a fair coin is 11/1024, about 1%. Say what a p-value "
            "is not: the probability that the null hypothesis is true.",
        ),
    ),
    (("coin",), lambda q: _reply(_COIN, "One line: P(X >= 9) for X ~ Bin(10, 0.5) is 0.011.")),
    (("quiz me",), lambda q: _reply(_QUIZ, "One question about the meaning of p.")),
    (
        ("confidence interval",),
        lambda q: _reply(_CONFIDENCE, "Relate the interval to the earlier coin example."),
    ),
]


def _after_tools(messages: Sequence[Mapping[str, Any]]) -> Reply | None:
    names = _tool_names(messages)
    if "describe_variable" in names and "value_counts" in names:
        return _reply(_MARCH_ANSWER, "4 rows for March, all 4 with units missing: sum() gives 0.")
    return None


def _structured(question: str) -> Reply:
    row = question.rsplit("Review:", 1)[-1].strip()
    return StreamReply(text=json.dumps(_label(row)), provider="DeepSeek")


def _overfitting(model: str) -> Reply:
    if "gpt" in model:
        return StreamReply(
            text=_OVERFIT_NANO,
            reasoning="Use an analogy.",
            provider="OpenAI",
            chunk_chars=8,
            delay=0.04,
        )
    return _reply(_OVERFIT_FLASH, "Define it, then say how to spot it.")


def demo_reply(body: Mapping[str, Any]) -> Reply | None:
    """The scripted answer to a request of the shipped notebooks, or None (echo)."""
    messages = request_messages(body)
    if messages and messages[-1].get("role") == "tool":
        return _after_tools(messages)
    question = _question(messages)
    lower = question.lower()
    if body.get("response_format") and "review:" in lower:
        return _structured(question)
    if "overfitting" in lower:
        return _overfitting(str(body.get("model") or ""))
    for keys, make in _RULES:
        if all(key in lower for key in keys):
            return make(question)
    return None
