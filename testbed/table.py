"""Tables and figures as the demo prints them and the benchmarks write them:
a column is (header, align) with align "<" or ">"; rows are lists of values
already formatted as text (`fmt` does numbers)."""

import math
import statistics


def fmt(value, digits=0, unit=""):
    """A number with thousands separators and `digits` decimals; "n/a" for None."""
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def med(values):
    """The median of the values that are not None; None if there are none."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def quantile(values, q):
    """The `q` quantile (0..1) of `values` by the nearest-rank method (a value
    that was observed); None if there are none."""
    values = sorted(values)
    if not values:
        return None
    rank = min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))
    return values[rank]


def markdown_table(columns, rows):
    """A GitHub-flavoured Markdown table, as a list of lines."""
    lines = ["| " + " | ".join(header for header, _ in columns) + " |",
             "|" + "|".join("---:" if align == ">" else "---" for _, align in columns) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def text_table(columns, rows, indent="  ", gap=" "):
    """A plain-text table with columns as wide as their widest cell, as a list of lines."""
    cells = [[header for header, _ in columns]] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for row in cells:
        parts = [f"{cell:{align}{width}}" for cell, (_, align), width in zip(row, columns, widths)]
        lines.append((indent + gap.join(parts)).rstrip())
    return lines
