package expiry

import (
	"strings"
	"unicode/utf8"
)

// colour is an ANSI SGR sequence, or "" for none.
type colour string

const (
	none   colour = ""
	bold   colour = "\x1b[1m"
	red    colour = "\x1b[31m"
	yellow colour = "\x1b[33m"
	green  colour = "\x1b[32m"
	reset         = "\x1b[0m"
)

// cell is one table cell: its text and the colour it takes on a terminal.
type cell struct {
	text string
	c    colour
}

func plain(s string) cell { return cell{text: s} }

func header(names ...string) []cell {
	out := make([]cell, len(names))
	for i, n := range names {
		out[i] = cell{n, bold}
	}
	return out
}

// severity is the colour of a row's time-left cell: red when expired or broken, yellow when expiring, green
// otherwise.
func severity(ws []Warning) colour {
	c := green
	for _, w := range ws {
		switch w {
		case WarnExpiring, WarnCRLStale, WarnNotYetValid:
			if c == green {
				c = yellow
			}
		default:
			c = red
		}
	}
	return c
}

func warnCell(ws []Warning) cell {
	texts := make([]string, len(ws))
	for i, w := range ws {
		texts[i] = warningText[w]
	}
	c := severity(ws)
	if c == green {
		c = none
	}
	return cell{strings.Join(texts, ", "), c}
}

// writeTable aligns rows in columns two spaces apart. Widths count runes of the text only, so colour codes
// never shift the columns; the last column is not padded, and no line has trailing spaces.
func writeTable(b *strings.Builder, rows [][]cell, color bool) {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			text := c.text
			if color && c.c != none && text != "" {
				text = string(c.c) + text + reset
			}
			line.WriteString(text)
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+2))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
}
