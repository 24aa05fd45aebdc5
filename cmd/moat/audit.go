package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/moat-dev/moat/internal/audit"
)

func (c *cli) audit(args []string) int {
	if len(args) == 0 {
		return c.usageError("audit", "missing subcommand: verify")
	}
	if args[0] != "verify" {
		return c.usageError("audit", "unknown subcommand %q: want verify", args[0])
	}
	const name = "audit verify"
	cmd := newCommand(name, "moat audit verify [--json] [flags]",
		"Walks the whole audit log and checks every event's hash and its link to the\n"+
			"previous one. Exits 1 at the first broken link. Keep the printed head hash\n"+
			"somewhere else: it reveals a later rewrite of the whole chain.")
	asJSON := cmd.fs.Bool("json", false, "print the report as JSON")
	if code, ok := c.parse(cmd, args[1:]); !ok {
		return code
	}
	if len(cmd.args) > 0 {
		return c.usageError(name, "unexpected argument %q", cmd.args[0])
	}
	srv, code, ok := c.openFor(name, cmd)
	if !ok {
		return code
	}
	defer srv.Close()
	rep, err := audit.Verify(c.ctx, srv.Store())
	if err != nil {
		return c.fail(name, err)
	}

	if *asJSON {
		out := struct {
			OK        bool   `json:"ok"`
			Checked   int64  `json:"checked"`
			BrokenSeq int64  `json:"broken_seq,omitempty"`
			Reason    string `json:"reason,omitempty"`
			HeadSeq   int64  `json:"head_seq,omitempty"`
			HeadHash  string `json:"head_hash,omitempty"`
		}{rep.OK, rep.Checked, rep.BrokenSeq, rep.Reason, rep.HeadSeq, hex.EncodeToString(rep.HeadHash)}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintf(c.stdout, "%s\n", b)
	} else if rep.OK {
		fmt.Fprintf(c.stdout, "audit chain OK: %d events\n", rep.Checked)
		if rep.HeadSeq > 0 {
			fmt.Fprintf(c.stdout, "head: event #%d, hash %x\n", rep.HeadSeq, rep.HeadHash)
		}
	} else {
		fmt.Fprintf(c.stdout, "audit chain broken at event #%d: %s\n", rep.BrokenSeq, rep.Reason)
	}
	if !rep.OK {
		return exitFail
	}
	return exitOK
}
