package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// setting is one configuration value with its flag name, environment
// variable and default. Flags win over the environment, the environment
// over the default.
type setting struct {
	flag, env, help string
	value           flag.Value
}

// settings is the table behind `maxine --help`: every knob in one place.
type settings struct {
	list []setting
	fs   *flag.FlagSet
}

// newSettings returns an empty table. The flag set prints nothing itself:
// a bad flag is reported by the caller in one line (no usage dump), and
// --help is answered by the caller's fs.Usage. out is kept for callers
// that print their own flags' defaults.
func newSettings(name string, out io.Writer) *settings {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_ = out
	return &settings{fs: fs}
}

func (s *settings) add(p flag.Value, name, env, help string) {
	s.list = append(s.list, setting{flag: name, env: env, help: help, value: p})
	if name == "" {
		return // environment only: secrets stay off the command line
	}
	if env != "" {
		help += " (env " + env + ")"
	}
	s.fs.Var(p, name, help)
}

func (s *settings) String(p *string, name, env, def, help string) {
	*p = def
	s.add((*stringValue)(p), name, env, help)
}

func (s *settings) Int(p *int, name, env string, def int, help string) {
	*p = def
	s.add((*intValue)(p), name, env, help)
}

func (s *settings) Float(p *float64, name, env string, def float64, help string) {
	*p = def
	s.add((*floatValue)(p), name, env, help)
}

func (s *settings) Bool(p *bool, name, env string, def bool, help string) {
	*p = def
	s.add((*boolValue)(p), name, env, help)
}

func (s *settings) Duration(p *time.Duration, name, env string, def time.Duration, help string) {
	*p = def
	s.add((*durationValue)(p), name, env, help)
}

// parse applies the environment, then the command line. A bad value stops
// with one line naming the setting.
func (s *settings) parse(args []string, getenv func(string) string) error {
	for _, st := range s.list {
		if st.env == "" {
			continue
		}
		if v := getenv(st.env); v != "" {
			if err := st.value.Set(v); err != nil {
				return fmt.Errorf("invalid value %q for %s (--%s): %v", v, st.env, st.flag, err)
			}
		}
	}
	usage := s.fs.Usage
	s.fs.Usage = func() {} // the flag package calls it on every error, not only for -help
	err := s.fs.Parse(args)
	s.fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		if usage != nil {
			usage()
		}
		return err
	}
	if err != nil {
		return s.flagError(err)
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (settings are flags: see --help)", s.fs.Arg(0))
	}
	return nil
}

// flagError names the environment variable beside the flag in a parse
// error of the flag package ("invalid value "x" for flag -y: …").
func (s *settings) flagError(err error) error {
	msg := err.Error()
	for _, st := range s.list {
		if st.flag == "" || st.env == "" {
			continue
		}
		if strings.Contains(msg, " -"+st.flag+":") || strings.HasSuffix(msg, " -"+st.flag) {
			return fmt.Errorf("%s (%s)", strings.Replace(msg, " -"+st.flag, " --"+st.flag, 1), st.env)
		}
	}
	return errors.New(strings.Replace(msg, "provided but not defined: -", "unknown flag --", 1))
}

// usage prints every setting with its flag, environment variable and
// default, sorted by flag name.
func (s *settings) usage(w io.Writer, defaults map[string]string) {
	fmt.Fprintf(w, "Usage: maxine [flags]\n\nMaxine: service registry, discovery service and reverse-proxy gateway.\nEvery flag can also be set by its environment variable; flags win.\n\n")
	list := append([]setting(nil), s.list...)
	sort.Slice(list, func(i, j int) bool {
		if list[i].flag != list[j].flag {
			return list[i].flag < list[j].flag
		}
		return list[i].env < list[j].env
	})
	for _, st := range list {
		if st.flag == "" {
			continue
		}
		env := ""
		if st.env != "" {
			env = "  [" + st.env + "]"
		}
		// An empty or false default says nothing the help text does not.
		switch def := defaults[st.flag]; {
		case def == "" || def == "false":
			fmt.Fprintf(w, "  --%s%s\n        %s\n", st.flag, env, st.help)
		case isStringSetting(st.value):
			fmt.Fprintf(w, "  --%s%s\n        %s (default %q)\n", st.flag, env, st.help, def)
		default:
			fmt.Fprintf(w, "  --%s%s\n        %s (default %s)\n", st.flag, env, st.help, def)
		}
	}
	fmt.Fprintf(w, "  --help\n        print this help\n\nEnvironment only (secrets and accounts):\n")
	for _, st := range list {
		if st.flag == "" {
			fmt.Fprintf(w, "  %s\n        %s\n", st.env, st.help)
		}
	}
	fmt.Fprintf(w, "  PORT\n        admin port when MAXINE_ADMIN_ADDR is not set (:$PORT)\n")
}

type stringValue string

func isStringSetting(v flag.Value) bool {
	_, ok := v.(*stringValue)
	return ok
}

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

type intValue int

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not an integer")
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

type floatValue float64

func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return errors.New("not a number")
	}
	*v = floatValue(f)
	return nil
}
func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }

type boolValue bool

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a boolean (true/false)")
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }

type durationValue time.Duration

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a duration (e.g. 500ms, 5s, 1m)")
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string { return time.Duration(*v).String() }

// defaultsOf records each setting's default (its value before parsing), for
// the help text.
func (s *settings) defaultsOf() map[string]string {
	m := make(map[string]string, len(s.list))
	for _, st := range s.list {
		if st.flag != "" {
			m[st.flag] = st.value.String()
		}
	}
	return m
}
