#!/usr/bin/env bash
# Screenshots of the real TUI on the default model: runs `depthkv` (no
# arguments: the workbench with the built-in demo prompt) inside a private
# tmux server, drives it with keys, captures the screen with colours and
# renders each capture to PNG with scripts/ansi_to_png.py.
#
# usage: scripts/screenshots.sh [BINARY]
#   BINARY defaults to target/release/depthkv if built, else target/debug/depthkv.
# needs: tmux, python3 with Pillow, fonts-dejavu-core, the default model
#   (fetched on first use, or `depthkv fetch-model`).
# takes: about 5 minutes with the debug build on 2 CPU cores (two prefills).
# writes: screenshots/{main,heatmap,menu,help,decode,narrow}.png, each of the
#   four-variant workbench: the default panes (full, uniform, DepthKV from
#   the shipped profile) plus a pyramid pane added from the variants menu
#   (`a` `p`) before the first run.
#   main     200x50, mid-stream
#   heatmap  200x50, the DepthKV pane selected (`[`), heatmap focused, layer 20
#   menu     200x50, the variants menu (`a`)
#   help     200x50, the `?` overlay
#   decode   200x50, the DepthKV pane with decode-phase eviction (`a` `v`),
#            the heatmap's decode view (`h` ×3) of layer 20 after run #2
#   narrow   80x24, the Outputs tab (2x2 panes) after the first run
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [[ $# -ge 1 ]]; then
    BIN=$1
elif [[ -x target/release/depthkv ]]; then
    BIN=target/release/depthkv
else
    BIN=target/debug/depthkv
fi
[[ -x $BIN ]] || { echo "no depthkv binary at $BIN (build it, or pass its path)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
command -v tmux >/dev/null || { echo "needs tmux" >&2; exit 1; }
python3 -c 'import PIL' 2>/dev/null || { echo "needs Pillow: python3 -m pip install pillow" >&2; exit 1; }
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ]] ||
    { echo "needs DejaVu fonts: apt-get install fonts-dejavu-core" >&2; exit 1; }

OUT=$ROOT/screenshots
WORK=$(mktemp -d)
SOCK=depthkv-shots-$$                # private tmux server: no user config, no clash
TM=(tmux -L "$SOCK" -f /dev/null)
WAIT_S=${WAIT_S:-300}                 # per state; prefill on CPU takes 30-90 s
MID_TOKENS=${MID_TOKENS:-12}          # main.png: tokens the Full pane has streamed
START=$SECONDS
mkdir -p "$OUT" "$WORK/config"

cleanup() {
    "${TM[@]}" kill-server 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '[%3ds] %s\n' $((SECONDS - START)) "$*"; }

screen() { "${TM[@]}" capture-pane -p -t "$1"; }

# wait_until SESSION WHAT CMD...: poll the screen (on stdin of CMD) until CMD succeeds.
wait_until() {
    local session=$1 what=$2 deadline=$((SECONDS + WAIT_S))
    shift 2
    while ! "$@" <<<"$(screen "$session")"; do
        if ((SECONDS > deadline)); then
            echo "timed out after ${WAIT_S}s waiting for: $what; last screen:" >&2
            screen "$session" >&2
            exit 1
        fi
        sleep 0.5
    done
    log "$what"
}

# Conditions on a screen read from stdin.
has() { grep -qF -- "$1"; }
lacks() { ! grep -qF -- "$1"; }
PANES=4
all_done() { [[ $(grep -oE ' done( · cached)? ' | wc -l) -ge $PANES ]]; }
# Run $1 finished: the status line says "ready:", or every pane says done.
# (Narrow headers drop the run id; the first run needs no id to tell it.)
run_done() {
    local s; s=$(cat)
    { [[ $1 == 1 ]] || [[ $s == *"run #$1"* ]]; } && { [[ $s == *" ready: "* ]] || all_done <<<"$s"; }
}
# Streaming, and the Full pane has printed at least $1 tokens. Aborts if the
# run ends first (the "main" shot is meant to be mid-stream).
streaming_with() {
    local s n
    s=$(cat)
    if [[ $s == *" ready: "* ]]; then
        echo "the run finished before $1 tokens were seen streaming; lower MID_TOKENS" >&2
        exit 1
    fi
    [[ $s == *streaming* ]] || return 1  # a pane title says "streaming…"
    n=$(grep -oE '[│┃]([0-9]+) tok ·' <<<"$s" | grep -oE '[0-9]+' | sort -n | tail -1)
    [[ ${n:-0} -ge $1 ]]
}

shoot() { # SESSION NAME SIZE
    "${TM[@]}" capture-pane -e -p -N -t "$1" >"$WORK/$2.ans"
    python3 "$ROOT/scripts/ansi_to_png.py" "$WORK/$2.ans" "$OUT/$2.png" --size "$3"
}

start() { # SESSION COLS ROWS
    # The pane outlives depthkv so that the restored terminal can be checked.
    "${TM[@]}" new-session -d -s "$1" -x "$2" -y "$3" \
        "env XDG_CONFIG_HOME='$WORK/config' '$BIN'; echo depthkv-exit=\$?; sleep 60"
}

quit_and_check() { # SESSION
    "${TM[@]}" send-keys -t "$1" q
    wait_until "$1" "$1: exited" has depthkv-exit=
    local flags
    flags=$("${TM[@]}" display -p -t "$1" '#{alternate_on} #{cursor_flag} #{mouse_any_flag} #{mouse_sgr_flag}')
    if [[ $flags == "0 1 0 0" ]] && has depthkv-exit=0 <<<"$(screen "$1")"; then
        log "$1: terminal restored (main screen, cursor shown, mouse off)"
    else
        echo "$1: terminal NOT restored: alternate/cursor/mouse/sgr = $flags" >&2
        screen "$1" >&2
        exit 1
    fi
}

log "binary: $BIN"

# add_pyramid SESSION: the fourth pane, from the variants menu, while the
# model loads (the first run then carries all four variants).
add_pyramid() {
    wait_until "$1" "$1: up" has "Layer budgets"
    "${TM[@]}" send-keys -t "$1" a
    wait_until "$1" "$1: variants menu open" has "Add a pane"
    "${TM[@]}" send-keys -t "$1" p
    wait_until "$1" "$1: pyramid pane added" has "pane 4/4 pyramid"
}

# Wide layout, 200x50.
start wide 200 50
add_pyramid wide
wait_until wide "wide: streaming, $MID_TOKENS tokens in" streaming_with "$MID_TOKENS"
shoot wide main 200x50
wait_until wide "wide: run #1 done" run_done 1

"${TM[@]}" send-keys -t wide '['                # select the DepthKV pane
wait_until wide "wide: DepthKV pane selected" has "pane 3/4 depthkv"
"${TM[@]}" send-keys -t wide 2                  # focus the heatmap
for _ in $(seq 20); do "${TM[@]}" send-keys -t wide Down; done
wait_until wide "wide: layer 20 selected" has "Tokens · layer 20"
shoot wide heatmap 200x50

"${TM[@]}" send-keys -t wide a
wait_until wide "wide: variants menu open" has "Add a pane"
shoot wide menu 200x50
"${TM[@]}" send-keys -t wide Escape

"${TM[@]}" send-keys -t wide '?'
wait_until wide "wide: help open" has "any key closes"
shoot wide help 200x50
"${TM[@]}" send-keys -t wide Escape

"${TM[@]}" send-keys -t wide a
wait_until wide "wide: variants menu open" has "Add a pane"
"${TM[@]}" send-keys -t wide v
wait_until wide "wide: eviction on" has "decode-phase eviction: on"
"${TM[@]}" send-keys -t wide Escape
wait_until wide "wide: menu closed" lacks "Add a pane"
"${TM[@]}" send-keys -t wide h h h
wait_until wide "wide: decode view" has "Heatmap · decode"
wait_until wide "wide: run #2 done" run_done 2
shoot wide decode 200x50
quit_and_check wide

# Narrow layout, 80x24: tabs instead of panels, the panes two by two.
start narrow 80 24
add_pyramid narrow
"${TM[@]}" send-keys -t narrow 4
wait_until narrow "narrow: run #1 done" run_done 1
shoot narrow narrow 80x24
quit_and_check narrow

log "done: main.png heatmap.png menu.png help.png decode.png narrow.png in $OUT"
