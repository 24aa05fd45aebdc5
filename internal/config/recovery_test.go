package config

import (
	"strings"
	"testing"
	"time"
)

func TestRecoveryDefaults(t *testing.T) {
	c, err := Load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Recovery; r.WaitingPeriod != 72*time.Hour || r.NoticeEvery != 24*time.Hour || r.Hold != 168*time.Hour {
		t.Errorf("defaults %+v, want DESIGN.md's 72h, 24h, 168h", r)
	}
}

func TestRecoveryValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Recovery)
		key    string // "" means valid
	}{
		{"defaults", func(*Recovery) {}, ""},
		{"a week's wait, daily notices", func(r *Recovery) { r.WaitingPeriod = 168 * time.Hour }, ""},
		{"notice once, at the start", func(r *Recovery) { r.WaitingPeriod, r.NoticeEvery = 2*time.Hour, 2*time.Hour }, ""},
		{"no waiting period", func(r *Recovery) { r.WaitingPeriod = 0 }, "recovery.waiting_period"},
		{"a minute's wait", func(r *Recovery) { r.WaitingPeriod = time.Minute }, "recovery.waiting_period"},
		{"a year's wait", func(r *Recovery) { r.WaitingPeriod = 365 * 24 * time.Hour }, "recovery.waiting_period"},
		{"no notices", func(r *Recovery) { r.NoticeEvery = 0 }, "recovery.notice_every"},
		{"notices every minute", func(r *Recovery) { r.NoticeEvery = time.Minute }, "recovery.notice_every"},
		{"notice after the wait", func(r *Recovery) { r.NoticeEvery = 96 * time.Hour }, "recovery.notice_every"},
		{"no hold", func(r *Recovery) { r.Hold = 0 }, "recovery.hold"},
		{"negative hold", func(r *Recovery) { r.Hold = -time.Hour }, "recovery.hold"},
		{"a year's hold", func(r *Recovery) { r.Hold = 365 * 24 * time.Hour }, "recovery.hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c.Recovery)
			err := c.Validate()
			if tc.key == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			ce, ok := err.(*Error)
			if !ok {
				t.Fatalf("want a problem with %s, got %v", tc.key, err)
			}
			for _, p := range ce.Problems {
				if p.Key != tc.key {
					t.Errorf("unexpected problem %s: %s", p.Key, p.Message)
				}
			}
			if len(ce.Problems) == 0 {
				t.Errorf("want a problem with %s", tc.key)
			}
		})
	}
}

// TestRecoveryFromFileAndEnvironment: the section reads from the file and
// the environment overrides it; there are no flags.
func TestRecoveryFromFileAndEnvironment(t *testing.T) {
	file := writeFile(t, "[recovery]\nwaiting_period = \"96h\"\nnotice_every = \"12h\"\nhold = \"240h\"\n")
	c, err := Load([]string{"--config", file}, envMap(map[string]string{"MOAT_RECOVERY_NOTICE_EVERY": "6h"}))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Recovery; r.WaitingPeriod != 96*time.Hour || r.NoticeEvery != 6*time.Hour || r.Hold != 240*time.Hour {
		t.Errorf("loaded %+v", r)
	}
	if _, err := Load(nil, envMap(map[string]string{"MOAT_RECOVERY_WAITING_PERIOD": "10m"})); err == nil || !strings.Contains(err.Error(), "recovery.waiting_period") {
		t.Errorf("a 10-minute waiting period from the environment: %v", err)
	}
	for _, s := range settings {
		if strings.HasPrefix(s.key, "recovery.") && s.flag != "" {
			t.Errorf("%s has a flag", s.key)
		}
	}
}
