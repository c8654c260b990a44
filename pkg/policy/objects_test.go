package policy

import (
	"reflect"
	"testing"

	"github.com/google/cel-go/common/types"
)

func TestObjectValue(t *testing.T) {
	act := newActivation(Input{User: User{Issuer: "https://idp.example.com", Subject: "alice"}})
	u := act.user
	if _, err := u.ConvertToNative(reflect.TypeFor[string]()); err == nil || err.Error() != "policy: agentid.User cannot be converted to string" {
		t.Errorf("ConvertToNative error = %v", err)
	}
	if got := u.ConvertToType(types.TypeType); got != userType.celType {
		t.Errorf("ConvertToType(type) = %v", got)
	}
	if got := u.ConvertToType(userType.celType); got != u {
		t.Errorf("ConvertToType(own type) = %v", got)
	}
	if got := u.ConvertToType(types.StringType); !types.IsError(got) || got.(*types.Err).String() != "type conversion error from 'agentid.User' to 'string'" {
		t.Errorf("ConvertToType(string) = %v", got)
	}
	if u.Equal(u) != types.True || u.Equal(act.agent) != types.False || u.Equal(newActivation(Input{}).user) != types.False {
		t.Error("Equal is not identity")
	}
	if u.Type() != userType.celType {
		t.Errorf("Type() = %v", u.Type())
	}
	if got := u.Get(types.String("sub")); got != types.String("alice") {
		t.Errorf(`Get("sub") = %v`, got)
	}
	if got := u.Get(types.String("nope")); !types.IsError(got) || got.(*types.Err).String() != "no such field: nope" {
		t.Errorf(`Get("nope") = %v`, got)
	}
	if got := u.Get(types.Int(1)); !types.IsError(got) {
		t.Errorf(`Get(1) = %v, want an error`, got)
	}
	if u.IsSet(types.String("sub")) != types.True || u.IsSet(types.String("email")) != types.False || u.IsSet(types.String("groups")) != types.False {
		t.Error("IsSet does not follow the zero values")
	}
	if got := u.IsSet(types.String("nope")); !types.IsError(got) {
		t.Errorf(`IsSet("nope") = %v, want an error`, got)
	}
	if act.Parent() != nil {
		t.Error("activation has a parent")
	}
}

func TestProviderFieldNames(t *testing.T) {
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	p := env.CELTypeProvider()
	for name, want := range map[string][]string{
		"agentid.User":    {"iss", "sub", "email", "groups"},
		"agentid.Agent":   {"id", "name", "ceiling"},
		"agentid.Request": {"scopes", "ttl", "intent"},
	} {
		got, ok := p.FindStructFieldNames(name)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("FindStructFieldNames(%s) = %v, %v; want %v", name, got, ok, want)
		}
	}
	if _, ok := p.FindStructFieldNames("agentid.Nope"); ok {
		t.Error("FindStructFieldNames found an undeclared type")
	}
}
