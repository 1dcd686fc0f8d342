"""A report as a list of blocks, written as Markdown (PNG beside it) and as one HTML page that
embeds the PNGs (base64), so the folder can be mailed or the page opened anywhere."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Doc:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]], caption: str = "") -> None:
        self.blocks.append(("table", header, rows, caption))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", Path(path), caption))

    # ------------------------------------------------------------------ writers
    def markdown(self, folder: Path) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b[0] == "h":
                out += ["#" * (b[1] + 1) + " " + b[2], ""]
            elif b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "table":
                _, header, rows, caption = b
                if caption:
                    out += [caption, ""]
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
                out.append("")
            elif b[0] == "img":
                _, path, caption = b
                out += [f"![{caption}]({path.relative_to(folder).as_posix()})", "", f"*{caption}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for b in self.blocks:
            if b[0] == "h":
                body.append(f"<h{b[1] + 1}>{_inline(b[2])}</h{b[1] + 1}>")
            elif b[0] == "p":
                body.append(f"<p>{_inline(b[1])}</p>")
            elif b[0] == "table":
                _, header, rows, caption = b
                cap = f"<caption>{_inline(caption)}</caption>" if caption else ""
                head = "".join(f"<th>{_inline(h)}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif b[0] == "img":
                _, path, caption = b
                data = base64.b64encode(Path(path).read_bytes()).decode()
                body.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                    f"<figcaption>{_inline(caption)}</figcaption></figure>"
                )
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body)
            + "</body></html>"
        )

    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        md, page = folder / "report.md", folder / "report.html"
        md.write_text(self.markdown(folder))
        page.write_text(self.html())
        return md, page


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
    "caption{caption-side:top;text-align:left;padding:4px 0;color:#444}figure{margin:1.5em 0}"
    "img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:14px}code{background:#f3f3f3;"
    "padding:0 3px}em{color:#666}"
)


def _inline(text: str) -> str:
    """HTML of a line of our Markdown: `code`, *emphasis*, **strong** only.

    Not python-markdown (installed here, with tensorboard): it passes inline HTML through unescaped,
    and report lines quote dataset sentences and file names, which must show as text; the three
    constructs the report writes are converted after escaping everything."""
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", t)
