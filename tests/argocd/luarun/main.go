// luarun runs an Argo CD Lua customization on one object the way Argo CD does: gopher-lua without
// the standard libraries except package, base, table and a reduced os (time, date, clock), the
// object as the global `obj`, a one-second deadline, the returned table encoded with gopher-json.
// What happens to the result also follows Argo CD:
//
//	luarun health    SCRIPT OBJECT.json -> {"status", "message"}; a status Argo CD does not know
//	                                       becomes Unknown
//	luarun discovery SCRIPT OBJECT.json -> [{"name", "disabled"}] sorted by name
//	luarun action    SCRIPT OBJECT.json -> {"patch": the JSON merge patch Argo CD would send}
//	                                       (empty tables that were objects are put back first)
//
// Test-only; built into the shared cache by tests/argocd/build-luarun.sh, never committed.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	jsonpatch "github.com/evanphx/json-patch"
	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// safeOs exposes only os.time, os.date and os.clock, as Argo CD's reduced os library does.
func safeOs(l *lua.LState) int {
	reduced := l.NewTable()
	l.Push(l.NewFunction(lua.OpenOs))
	l.Push(lua.LString(lua.OsLibName))
	l.Call(1, 1)
	opened := l.Get(-1).(*lua.LTable)
	l.Pop(1)
	for _, name := range []string{"time", "date", "clock"} {
		reduced.RawSetString(name, opened.RawGetString(name))
	}
	l.SetGlobal(lua.OsLibName, reduced)
	l.Push(reduced)
	return 1
}

func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]interface{}:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// execute runs the script and returns what it returned, JSON-encoded (nil when it returned nil).
func execute(script string, obj map[string]interface{}) ([]byte, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.OsLibName, safeOs}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.fn), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	if ret.Type() == lua.LTNil {
		return nil, nil
	}
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	return luajson.Encode(ret)
}

var knownHealth = map[string]bool{"Healthy": true, "Progressing": true, "Suspended": true, "Degraded": true, "Missing": true, "Unknown": true}

func health(out []byte) (interface{}, error) {
	hs := struct {
		Status  string `json:"status,omitempty"`
		Message string `json:"message,omitempty"`
	}{}
	if out == nil {
		return hs, nil
	}
	if err := json.Unmarshal(out, &hs); err != nil {
		return nil, err
	}
	if !knownHealth[hs.Status] {
		hs.Status, hs.Message = "Unknown", "Lua returned an invalid health status"
	}
	return hs, nil
}

type action struct {
	Name     string `json:"name"`
	Disabled bool   `json:"disabled"`
}

func discovery(out []byte) (interface{}, error) {
	found := []action{}
	if out == nil || string(out) == "[]" { // an empty Lua table encodes as an empty array
		return found, nil
	}
	listed := map[string]interface{}{}
	if err := json.Unmarshal(out, &listed); err != nil {
		return nil, err
	}
	for name, opts := range listed {
		disabled := false
		if m, ok := opts.(map[string]interface{}); ok {
			disabled, _ = m["disabled"].(bool)
		}
		found = append(found, action{name, disabled})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	return found, nil
}

// restoreEmptyObjects turns empty arrays back into objects where the live object had an object:
// gopher-json cannot tell an empty table from an empty array, and Argo CD corrects for that.
func restoreEmptyObjects(returned, live interface{}) interface{} {
	switch r := returned.(type) {
	case map[string]interface{}:
		if l, ok := live.(map[string]interface{}); ok {
			for key, value := range r {
				if old, ok := l[key]; ok {
					r[key] = restoreEmptyObjects(value, old)
				}
			}
		}
	case []interface{}:
		switch l := live.(type) {
		case map[string]interface{}:
			if len(r) == 0 {
				return l
			}
		case []interface{}:
			for i := range r {
				if i < len(l) {
					r[i] = restoreEmptyObjects(r[i], l[i])
				}
			}
		}
	}
	return returned
}

func patch(out []byte, obj map[string]interface{}) (interface{}, error) {
	if out == nil || len(out) < 2 || out[0] == '[' {
		return nil, fmt.Errorf("an action here returns the object (one patch), not %s", string(out))
	}
	returned := map[string]interface{}{}
	if err := json.Unmarshal(out, &returned); err != nil {
		return nil, err
	}
	cleaned, err := json.Marshal(restoreEmptyObjects(returned, obj))
	if err != nil {
		return nil, err
	}
	live, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	diff, err := jsonpatch.CreateMergePatch(live, cleaned)
	if err != nil {
		return nil, err
	}
	return map[string]json.RawMessage{"patch": diff}, nil
}

func run(mode, scriptPath, objectPath string) (interface{}, error) {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(objectPath)
	if err != nil {
		return nil, err
	}
	var obj map[string]interface{}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("object: %w", err)
	}
	var input map[string]interface{}
	_ = json.Unmarshal(raw, &input) // a second copy: the script's result must not alias the live object
	out, err := execute(string(script), input)
	if err != nil {
		return nil, err
	}
	switch mode {
	case "health":
		return health(out)
	case "discovery":
		return discovery(out)
	case "action":
		return patch(out, obj)
	}
	return nil, fmt.Errorf("unknown mode %q (health, discovery, action)", mode)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: luarun health|discovery|action SCRIPT.lua OBJECT.json")
		os.Exit(2)
	}
	result, err := run(os.Args[1], os.Args[2], os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	encoded, err := json.Marshal(result)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(encoded))
}
