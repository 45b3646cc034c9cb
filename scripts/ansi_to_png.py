#!/usr/bin/env python3
"""Render a terminal capture with ANSI SGR colours (`tmux capture-pane -e -p`)
to a PNG that looks like the terminal it came from.

usage: ansi_to_png.py IN.ans OUT.png [--size COLSxROWS] [--font-size PX]

Handles 16/256/truecolour fg and bg, bold, dim, italic, underline, reverse,
hidden and strikethrough. Block elements (halves, eighths, shades) are drawn
as rectangles so heatmaps and bars are solid; everything else uses DejaVu
Sans Mono. SGR state carries across lines, as tmux emits it.
"""
import argparse
import os
import re
import sys
import tempfile
import unicodedata

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
DEFAULT_FG = (204, 208, 216)
DEFAULT_BG = (15, 17, 23)
# A dark terminal palette for the 16 ANSI colours.
BASE16 = [
    (30, 33, 40), (224, 108, 117), (152, 195, 121), (229, 192, 123),
    (97, 175, 239), (198, 120, 221), (86, 182, 194), (200, 204, 212),
    (92, 99, 112), (240, 130, 140), (180, 220, 150), (240, 210, 150),
    (130, 195, 250), (215, 150, 235), (120, 205, 215), (240, 242, 246),
]


def xterm256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + 10 * (n - 232)
    return (v, v, v)


class Style:
    def __init__(self):
        self.fg = self.bg = None
        self.bold = self.dim = self.italic = self.under = self.rev = self.hidden = self.strike = False

    def copy(self):
        s = Style()
        s.__dict__.update(self.__dict__)
        return s

    def apply(self, params):
        """Apply one SGR parameter string such as '1;38;2;10;20;30' or '38:2::10:20:30'."""
        toks = (params or "0").split(";")
        i = 0
        while i < len(toks):
            if ":" in toks[i]:  # colon form: 38:2::r:g:b, 48:5:n, 4:3 (curly underline)
                sub = [int(v) if v.isdigit() else 0 for v in toks[i].split(":")]
                if sub[0] in (38, 48) and len(sub) >= 3:
                    col = tuple(v & 255 for v in sub[-3:]) if sub[1] == 2 else xterm256(sub[2] & 255)
                    setattr(self, "fg" if sub[0] == 38 else "bg", col)
                elif sub[0] == 4:
                    self.under = sub[1] != 0
                i += 1
                continue
            n = int(toks[i]) if toks[i].isdigit() else 0
            nxt = [int(t) if t.isdigit() else 0 for t in toks[i + 1:i + 5]]
            if n == 0:
                self.__init__()
            elif n in (38, 48) and nxt[:1] == [5] and len(nxt) >= 2:
                setattr(self, "fg" if n == 38 else "bg", xterm256(nxt[1] & 255))
                i += 2
            elif n in (38, 48) and nxt[:1] == [2] and len(nxt) >= 4:
                setattr(self, "fg" if n == 38 else "bg", tuple(v & 255 for v in nxt[1:4]))
                i += 4
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
            fg = mix(fg, bg, 0.5)
        if self.hidden:
            fg = bg
        return fg, bg


# SGR codes that set one attribute.
SIMPLE = {1: ("bold", True), 2: ("dim", True), 3: ("italic", True), 4: ("under", True), 7: ("rev", True),
          8: ("hidden", True), 9: ("strike", True), 23: ("italic", False), 24: ("under", False),
          27: ("rev", False), 28: ("hidden", False), 29: ("strike", False), 39: ("fg", None), 49: ("bg", None)}


def mix(a, b, t):
    return tuple(round(x * (1 - t) + y * t) for x, y in zip(a, b))


TOKEN = re.compile(r"\x1b\[([0-9;:]*)m|\x1b\[[0-9;:?<>=]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]|(.)", re.S)


def char_width(ch):
    if unicodedata.combining(ch) or ch in "\u200b\u200d\ufe0f":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def parse(text):
    """Rows of cells; a cell is (text, width, Style)."""
    rows, style = [], Style()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        row = []
        for m in TOKEN.finditer(line.rstrip("\r")):
            if m.group(1) is not None:
                style.apply(m.group(1))
            elif m.group(2) is not None:
                ch = m.group(2)
                w = char_width(ch)
                if w == 0 and row:
                    t, pw, st = row[-1]
                    row[-1] = (t + ch, pw, st)
                elif w > 0 and (ch >= " " or ch == "\t"):
                    row.append((" " if ch == "\t" else ch, w, style.copy()))
        rows.append(row)
    return rows


# Block elements as (x0, y0, x1, y1) fractions of the cell.
BLOCKS = {"\u2580": (0, 0, 1, .5), "\u2590": (.5, 0, 1, 1), "\u2594": (0, 0, 1, .125), "\u2595": (.875, 0, 1, 1)}
for k in range(1, 9):
    BLOCKS[chr(0x2580 + k)] = (0, 1 - k / 8, 1, 1)   # ▁ .. █ (lower k/8)
    BLOCKS[chr(0x2590 - k)] = (0, 0, k / 8, 1)       # ▏ .. █ (left k/8)
SHADES = {"\u2591": .25, "\u2592": .5, "\u2593": .75}


def render(rows, cols, nrows, font_px):
    fonts = {(b, i): ImageFont.truetype(os.path.join(FONT_DIR, "DejaVuSansMono%s.ttf" % (
        {(0, 0): "", (1, 0): "-Bold", (0, 1): "-Oblique", (1, 1): "-BoldOblique"}[(b, i)])), font_px)
        for b in (0, 1) for i in (0, 1)}
    reg = fonts[(0, 0)]
    ascent, descent = reg.getmetrics()
    cw, ch = round(reg.getlength("M")), ascent + descent
    img = Image.new("RGB", (cols * cw, nrows * ch), DEFAULT_BG)
    draw = ImageDraw.Draw(img)
    for r, row in enumerate(rows[:nrows]):
        x = 0
        for text, w, st in row:
            if x >= cols:
                break
            fg, bg = st.colours()
            x0, y0 = x * cw, r * ch
            x1, y1 = x0 + w * cw, y0 + ch
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=bg)
            if text in BLOCKS:
                fx0, fy0, fx1, fy1 = BLOCKS[text]
                draw.rectangle([x0 + round(fx0 * cw), y0 + round(fy0 * ch),
                                x0 + round(fx1 * cw) - 1, y0 + round(fy1 * ch) - 1], fill=fg)
            elif text in SHADES:
                draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=mix(bg, fg, SHADES[text]))
            elif text != " ":
                font = fonts[(int(st.bold), int(st.italic))]
                draw.text((x0, y0 + ascent), text, font=font, fill=fg, anchor="ls")
            if st.under:
                draw.line([x0, y0 + ascent + 2, x1 - 1, y0 + ascent + 2], fill=fg)
            if st.strike:
                draw.line([x0, y0 + ch // 2, x1 - 1, y0 + ch // 2], fill=fg)
            x += w
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--size", help="COLSxROWS (default: fit the capture)")
    ap.add_argument("--font-size", type=int, default=15)
    a = ap.parse_args()
    with open(a.input, encoding="utf-8", errors="replace") as f:
        rows = parse(f.read())
    if a.size:
        cols, nrows = (int(v) for v in a.size.lower().split("x"))
    else:
        cols = max((sum(w for _, w, _ in row) for row in rows), default=1)
        nrows = max(len(rows), 1)
    img = render(rows, cols, nrows, a.font_size)
    out_dir = os.path.dirname(os.path.abspath(a.output))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, "PNG", optimize=True)
        os.replace(tmp, a.output)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"{a.output}: {img.width}x{img.height} ({cols}x{nrows} cells)")


if __name__ == "__main__":
    sys.exit(main())
