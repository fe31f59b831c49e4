package main

// The configuration file: YAML whose keys are the flag names (listen,
// ice-port, resume-window…), read with go.yaml.in/yaml/v3 for its line
// numbers. Precedence: flag > ROUNDTABLE_* variable > file > default.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/roundtable-sfu/roundtable/internal/server"
	"go.yaml.in/yaml/v3"
)

// secretFlags are masked by `config print`.
var secretFlags = map[string]bool{"api-secret": true, "turn-secret": true, "ice-credential": true}

// configPath returns the -config file the command line names (-config F,
// -config=F, with one or two dashes), else ROUNDTABLE_CONFIG's, else "".
func configPath(args []string, env func(string) (string, bool)) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	if v, ok := env(envName("config")); ok {
		return v
	}
	return ""
}

// loadConfigFile sets fs's flags from the YAML file at path. It returns
// every problem, each as "path:line: …": a key that is no flag, a value
// that is not the flag's kind (a list may be a YAML sequence or a
// comma-separated string), a nested mapping.
func loadConfigFile(fs *flag.FlagSet, path string) []error {
	b, err := os.ReadFile(path)
	if err != nil {
		return []error{fmt.Errorf("config: %w", err)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return []error{fmt.Errorf("%s: %w", path, err)}
	}
	if len(doc.Content) == 0 {
		return nil // empty: nothing set
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return []error{fmt.Errorf("%s:%d: want a mapping of flag names to values", path, top.Line)}
	}
	var errs []error
	seen := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		at := fmt.Sprintf("%s:%d", path, k.Line)
		if first, dup := seen[k.Value]; dup {
			errs = append(errs, fmt.Errorf("%s: %q again (first at line %d)", at, k.Value, first))
			continue
		}
		seen[k.Value] = k.Line
		if fs.Lookup(k.Value) == nil || k.Value == "config" {
			errs = append(errs, fmt.Errorf("%s: unknown key %q (keys are the flag names: roundtable -help)", at, k.Value))
			continue
		}
		var value string
		switch v.Kind {
		case yaml.ScalarNode:
			value = v.Value
		case yaml.SequenceNode:
			var items []string
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("%s:%d: %s: want a list of plain values", path, it.Line, k.Value))
					continue
				}
				items = append(items, it.Value)
			}
			value = strings.Join(items, ",")
		default:
			errs = append(errs, fmt.Errorf("%s: %s: want a value or a list, not a mapping", at, k.Value))
			continue
		}
		if err := fs.Set(k.Value, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %q: %w%s", at, k.Value, value, err, wantKind(fs.Lookup(k.Value))))
		}
	}
	return errs
}

// wantKind says what kind of value a flag takes, for an error message.
func wantKind(f *flag.Flag) string {
	switch fmt.Sprintf("%T", f.Value) {
	case "*flag.intValue":
		return " (want an integer)"
	case "*flag.float64Value":
		return " (want a number)"
	case "*flag.boolValue":
		return " (want true or false)"
	case "*flag.durationValue":
		return " (want a duration such as 20s or 1m30s)"
	}
	return ""
}

// runConfig is `roundtable config check FILE` and `roundtable config print
// [flags]`.
func runConfig(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: roundtable config check FILE | roundtable config print [-config FILE] [flags]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			return errors.New(usage)
		}
		return checkConfig(args[1], stdout)
	case "print":
		cfg, fs, err := parseFlags(args[1:], os.LookupEnv, stderr)
		if err != nil {
			return err
		}
		printConfig(fs, stdout)
		// Printed all the same: what is wrong is easier to see in it.
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("the server would not start with this configuration:\n%w", err)
		}
		return nil
	}
	return errors.New(usage)
}

// checkConfig reports every problem of a configuration file, in line
// order: its keys and values, and what server.Config.Validate says of the
// values that could be read (the defaults standing in for the others),
// each with the line of the key it names.
func checkConfig(path string, stdout io.Writer) error {
	cfg := server.DefaultConfig()
	layer := 1
	fs := flags(&cfg, &layer, io.Discard)
	errs := loadConfigFile(fs, path)
	// The secrets belong in the environment, not the file: take them from
	// there, as the server would.
	layer = 2
	for name := range secretFlags {
		if v, ok := os.LookupEnv(envName(name)); ok {
			_ = fs.Set(name, v)
		}
	}
	reported := map[int]bool{} // lines with an error already: a failed Set leaves a zero behind
	for _, e := range errs {
		reported[lineOf(e.Error(), path)] = true
	}
	if err := cfg.Validate(); err != nil {
		lines := keyLines(path)
		for _, msg := range strings.Split(err.Error(), "\n") {
			key, _, _ := strings.Cut(msg, " ")
			key = strings.TrimSuffix(key, ":")
			if line, ok := lines[key]; ok && reported[line] {
				continue
			} else if ok {
				msg = fmt.Sprintf("%s:%d: %s", path, line, msg)
			} else {
				msg = path + ": " + msg
			}
			errs = append(errs, errors.New(msg))
		}
	}
	slices.SortStableFunc(errs, func(a, b error) int { return lineOf(a.Error(), path) - lineOf(b.Error(), path) })
	for _, e := range errs {
		fmt.Fprintln(stdout, e)
	}
	if n := len(errs); n == 1 {
		return fmt.Errorf("config check: a problem in %s", path)
	} else if n > 1 {
		return fmt.Errorf("config check: %d problems in %s", n, path)
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return nil
}

// lineOf returns the line number of a "path:line: …" message, 0 if none.
func lineOf(msg, path string) int {
	rest, ok := strings.CutPrefix(msg, path+":")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(strings.SplitN(rest, ":", 2)[0])
	return n
}

// keyLines maps each top-level key of a YAML file to its line.
func keyLines(path string) map[string]int {
	out := map[string]int{}
	b, err := os.ReadFile(path)
	var doc yaml.Node
	if err != nil || yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return out
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		out[top.Content[i].Value] = top.Content[i].Line
	}
	return out
}

// printConfig writes the configuration in force as YAML a -config file
// takes. A secret that is set is left out, with a comment saying so: the
// output can be used as a file, with the secrets given by the
// environment.
func printConfig(fs *flag.FlagSet, w io.Writer) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	var hidden []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		v := f.Value.String()
		if secretFlags[f.Name] && v != "" {
			hidden = append(hidden, f.Name)
			return
		}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: f.Name},
			&yaml.Node{Kind: yaml.ScalarNode, Value: v})
	})
	for _, name := range hidden {
		fmt.Fprintf(w, "# %s: set, not shown (give it with %s)\n", name, envName(name))
	}
	b, err := yaml.Marshal(root)
	if err != nil {
		fmt.Fprintln(w, "# config print:", err)
		return
	}
	_, _ = w.Write(b)
}
