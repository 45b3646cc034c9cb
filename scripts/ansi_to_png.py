#!/usr/bin/env python3
"""Render a terminal capture with ANSI colours (`tmux capture-pane -e -p`) to a PNG.

usage: ansi_to_png.py IN.ans OUT.png [--size COLSxROWS] [--font-size PX]

Handles 16/256/truecolour foreground and background, bold, dim, italic,
underline, reverse, hidden and strikethrough; SGR state carries across lines,
as tmux emits it. Text uses DejaVu Sans Mono (DejaVu Sans for glyphs the mono
face lacks); block elements (halves, eighths, shades) are drawn as rectangles
so heatmaps and bars come out solid. Wide characters take two cells.
"""
import argparse
import os
import re
import tempfile
import unicodedata

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
DEFAULT_FG = (204, 208, 216)
DEFAULT_BG = (15, 17, 23)
BASE16 = [  # a dark terminal palette for the 16 ANSI colours
    (30, 33, 40), (224, 108, 117), (152, 195, 121), (229, 192, 123),
    (97, 175, 239), (198, 120, 221), (86, 182, 194), (200, 204, 212),
    (92, 99, 112), (240, 130, 140), (180, 220, 150), (240, 210, 150),
    (130, 195, 250), (215, 150, 235), (120, 205, 215), (240, 242, 246),
]
# SGR codes that set a single attribute.
SIMPLE = {1: ("bold", True), 2: ("dim", True), 3: ("italic", True), 4: ("under", True), 7: ("rev", True),
          8: ("hidden", True), 9: ("strike", True), 23: ("italic", False), 24: ("under", False),
          27: ("rev", False), 28: ("hidden", False), 29: ("strike", False), 39: ("fg", None), 49: ("bg", None)}
# Block elements as (x0, y0, x1, y1) fractions of the cell, and shades as fg coverage.
BLOCKS = {"\u2580": (0, 0, 1, .5), "\u2590": (.5, 0, 1, 1), "\u2594": (0, 0, 1, .125), "\u2595": (.875, 0, 1, 1)}
for k in range(1, 9):
    BLOCKS[chr(0x2580 + k)] = (0, 1 - k / 8, 1, 1)  # ▁ ▂ ▃ ▄ ▅ ▆ ▇ █: lower k/8
    BLOCKS[chr(0x2590 - k)] = (0, 0, k / 8, 1)      # ▏ ▎ ▍ ▌ ▋ ▊ ▉ █: left k/8
SHADES = {"\u2591": .25, "\u2592": .5, "\u2593": .75}
# An SGR sequence (group 1), any other escape sequence (skipped), or one character (group 2).
TOKEN = re.compile(r"\x1b\[([0-9;:]*)m|\x1b\[[0-9;:?<>=!]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
                   r"|\x1b[ -/]*[0-~]|(.)", re.S)


def xterm256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        steps = (0, 95, 135, 175, 215, 255)
        return steps[(n - 16) // 36], steps[(n - 16) // 6 % 6], steps[(n - 16) % 6]
    return (8 + 10 * (n - 232),) * 3


def mix(a, b, t):
    return tuple(round(x * (1 - t) + y * t) for x, y in zip(a, b))


class Style:
    def __init__(self):
        self.fg = self.bg = None
        self.bold = self.dim = self.italic = self.under = self.rev = self.hidden = self.strike = False

    def copy(self):
        s = Style()
        s.__dict__.update(self.__dict__)
        return s

    def set_colour(self, which, sub):
        """38/48 followed by [5, n] or [2, r, g, b]; returns how many numbers it used."""
        if sub[:1] == [5] and len(sub) >= 2:
            setattr(self, which, xterm256(sub[1] & 255))
            return 2
        if sub[:1] == [2] and len(sub) >= 4:
            setattr(self, which, tuple(v & 255 for v in sub[1:4]))
            return 4
        return len(sub)

    def apply(self, params):
        """Apply an SGR parameter string: '1;38;2;10;20;30', '38:2::10:20:30', '' (reset)."""
        toks = (params or "0").split(";")
        num = [int(t) if t.isdigit() else 0 for t in toks]
        i = 0
        while i < len(toks):
            n = num[i]
            if ":" in toks[i]:  # colon sub-parameters: 38:2::r:g:b, 48:5:n, 4:3 (curly underline)
                sub = [int(v) if v.isdigit() else 0 for v in toks[i].split(":")]
                if sub[0] in (38, 48) and sub[1:2] == [2] and len(sub) >= 5:
                    sub = sub[:2] + sub[-3:]  # drop the optional colour-space id
                if sub[0] in (38, 48):
                    self.set_colour("fg" if sub[0] == 38 else "bg", sub[1:])
                elif sub[0] == 4:
                    self.under = sub[1:2] != [0]
            elif n == 0:
                self.__init__()
            elif n in (38, 48):
                i += self.set_colour("fg" if n == 38 else "bg", num[i + 1:i + 5])
            elif n in SIMPLE:
                setattr(self, *SIMPLE[n])
            elif n == 22:
                self.bold = self.dim = False
            elif 30 <= n <= 37 or 90 <= n <= 97:
                self.fg = BASE16[n - 30 if n < 90 else n - 82]
            elif 40 <= n <= 47 or 100 <= n <= 107:
                self.bg = BASE16[n - 40 if n < 100 else n - 92]
            i += 1

    def colours(self):
        fg, bg = self.fg or DEFAULT_FG, self.bg or DEFAULT_BG
        if self.rev:
            fg, bg = bg, fg
        if self.dim:
            fg = mix(fg, bg, 0.45)
        return (bg if self.hidden else fg), bg


def parse(text):
    """Rows of cells; a cell is (text, width in columns, Style)."""
    rows, style = [], Style()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        row = []
        for m in TOKEN.finditer(line.rstrip("\r")):
            if m.group(1) is not None:
                style.apply(m.group(1))
            elif m.group(2) is not None and m.group(2) >= " ":
                ch = m.group(2)
                if (unicodedata.combining(ch) or ch in "\u200d\ufe0f") and row:
                    row[-1] = (row[-1][0] + ch,) + row[-1][1:]  # joins the previous cell
                else:
                    width = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
                    row.append((ch, width, style.copy()))
        rows.append(row)
    return rows


def render(rows, cols, nrows, font_px):
    faces = {(0, 0): "Mono", (1, 0): "Mono-Bold", (0, 1): "Mono-Oblique", (1, 1): "Mono-BoldOblique"}
    fonts = {k: ImageFont.truetype(os.path.join(FONT_DIR, f"DejaVuSans{v}.ttf"), font_px) for k, v in faces.items()}
    fallback = ImageFont.truetype(os.path.join(FONT_DIR, "DejaVuSans.ttf"), font_px)
    sig = lambda font, ch: (lambda m: (m.size, bytes(m)))(font.getmask(ch))  # noqa: E731
    notdef = sig(fonts[(0, 0)], "\U000F0000")  # a private-use code point draws the "missing" box
    font_for = {}
    ascent, descent = fonts[(0, 0)].getmetrics()
    cw, ch = round(fonts[(0, 0)].getlength("M")), ascent + descent
    img = Image.new("RGB", (cols * cw, nrows * ch), DEFAULT_BG)
    draw = ImageDraw.Draw(img)
    cells = []
    for r, row in enumerate(rows[:nrows]):
        x = 0
        for text, w, st in row:
            if x + w > cols:
                break
            fg, bg = st.colours()
            box = (x * cw, r * ch, (x + w) * cw - 1, (r + 1) * ch - 1)
            draw.rectangle(box, fill=bg)
            cells.append((box, text, st, fg, bg))
            x += w
    # Foreground once all backgrounds are down, so a glyph may overhang its cell.
    for (x0, y0, x1, y1), text, st, fg, bg in cells:
        if text in BLOCKS:
            fx0, fy0, fx1, fy1 = BLOCKS[text]
            draw.rectangle((x0 + round(fx0 * cw), y0 + round(fy0 * ch),
                            x0 + round(fx1 * cw) - 1, y0 + round(fy1 * ch) - 1), fill=fg)
        elif text in SHADES:
            draw.rectangle((x0, y0, x1, y1), fill=mix(bg, fg, SHADES[text]))
        elif not text.isspace():
            key = (st.bold, st.italic, text)
            if key not in font_for:
                font = fonts[(int(st.bold), int(st.italic))]
                font_for[key] = fallback if sig(font, text[0]) == notdef else font
            draw.text((x0, y0 + ascent), text, font=font_for[key], fill=fg, anchor="ls")
        if st.under:
            draw.line((x0, y0 + ascent + 2, x1, y0 + ascent + 2), fill=fg)
        if st.strike:
            draw.line((x0, y0 + ch // 2, x1, y0 + ch // 2), fill=fg)
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--size", help="COLSxROWS of the terminal (default: fit the capture)")
    ap.add_argument("--font-size", type=int, default=15)
    a = ap.parse_args()
    with open(a.input, encoding="utf-8", errors="replace") as f:
        rows = parse(f.read())
    if a.size:
        cols, nrows = (int(v) for v in a.size.lower().split("x"))
    else:
        cols = max([sum(w for _, w, _ in row) for row in rows] + [1])
        nrows = max(len(rows), 1)
    img = render(rows, cols, nrows, a.font_size)
    fd, tmp = tempfile.mkstemp(suffix=".png.tmp", dir=os.path.dirname(os.path.abspath(a.output)))
    try:  # write beside the target, then rename: readers never see half a PNG
        with os.fdopen(fd, "wb") as f:
            img.save(f, "PNG", optimize=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, a.output)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"{a.output}: {img.width}x{img.height} px, {cols}x{nrows} cells")


if __name__ == "__main__":
    main()
