package expr

import (
	"errors"
	"fmt"

	"github.com/switchyard-dev/switchyard/internal/config"
)

// TextPos is where the text of the scalar at path begins, or the key's position if unknown.
func TextPos(cfg *config.Config, path string) config.Position {
	if p, ok := cfg.ValuePositions[path]; ok {
		return p
	}
	return cfg.Pos(path)
}

// Errors turns an error of Compile into config errors positioned at the expression's
// location in the YAML file: pos is where the expression's text starts (TextPos); a Col of 0
// means the text starts a block scalar whose indentation is unknown, so only lines move.
// what names the expression, e.g. `route "big" (for auctions.v1.BidPlaced)`.
func Errors(pos config.Position, what string, err error) config.Errors {
	var ce *CompileError
	if !errors.As(err, &ce) {
		return config.Errors{{Pos: pos, Msg: fmt.Sprintf("%s: %v", what, err)}}
	}
	var out config.Errors
	for _, is := range ce.List() {
		p := pos
		if is.Line > 0 {
			if is.Line == 1 && p.Col > 0 {
				p.Col += is.Column - 1
			} else {
				p.Line += is.Line - 1
				p.Col = is.Column
			}
		}
		out = append(out, config.Error{Pos: p, Msg: fmt.Sprintf("%s: %s", what, is.Message)})
	}
	return out
}
