package policy

import (
	"fmt"
	"reflect"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// The variables user, agent and request are CEL objects with declared
// fields, so the type checker knows every field: a misspelt field
// (user.gruops) is a compile error, where a map-typed variable would only
// fail, for everyone, when evaluated. ext.NativeTypes would give the same
// checking but converts Go slices element by element on every access; these
// objects hold CEL values built once per decision.

// objectType is a CEL object type with a fixed list of fields.
type objectType struct {
	celType *types.Type
	names   []string
	fields  map[string]*types.FieldType
	index   map[string]int
}

func newObjectType(name string, fields ...objectField) *objectType {
	t := &objectType{
		celType: types.NewObjectType(name),
		fields:  make(map[string]*types.FieldType, len(fields)),
		index:   make(map[string]int, len(fields)),
	}
	for i, f := range fields {
		t.names = append(t.names, f.name)
		t.index[f.name] = i
		t.fields[f.name] = &types.FieldType{
			Type: f.typ,
			IsSet: func(target any) bool {
				o, ok := target.(*object)
				return ok && o.typ == t && !isZero(o.fields[i])
			},
			GetFrom: func(target any) (any, error) {
				o, ok := target.(*object)
				if !ok || o.typ != t {
					return nil, fmt.Errorf("policy: %T is not a %s", target, name)
				}
				return o.fields[i], nil
			},
		}
	}
	return t
}

type objectField struct {
	name string
	typ  *types.Type
}

func isZero(v ref.Val) bool {
	z, ok := v.(traits.Zeroer)
	return ok && z.IsZeroValue()
}

// Field positions in object.fields; they follow the order in which the
// object types below declare their fields.
const (
	userIss, userSub, userEmail, userGroups  = 0, 1, 2, 3
	agentID, agentName, agentCeiling         = 0, 1, 2
	requestScopes, requestTTL, requestIntent = 0, 1, 2
)

var (
	userType = newObjectType("agentid.User",
		objectField{"iss", types.StringType},
		objectField{"sub", types.StringType},
		objectField{"email", types.StringType},
		objectField{"groups", types.NewListType(types.StringType)},
	)
	agentType = newObjectType("agentid.Agent",
		objectField{"id", types.StringType},
		objectField{"name", types.StringType},
		objectField{"ceiling", types.NewListType(types.StringType)},
	)
	requestType = newObjectType("agentid.Request",
		objectField{"scopes", types.NewListType(types.StringType)},
		objectField{"ttl", types.DurationType},
		objectField{"intent", types.StringType},
	)
	objectTypes = map[string]*objectType{
		userType.celType.TypeName():    userType,
		agentType.celType.TypeName():   agentType,
		requestType.celType.TypeName(): requestType,
	}
)

// object is a value of one of the object types: its fields, in declaration
// order, already converted to CEL values.
type object struct {
	typ    *objectType
	fields []ref.Val
}

var (
	_ ref.Val            = (*object)(nil)
	_ traits.Indexer     = (*object)(nil)
	_ traits.FieldTester = (*object)(nil)
)

func (o *object) ConvertToNative(typeDesc reflect.Type) (any, error) {
	return nil, fmt.Errorf("policy: %s cannot be converted to %v", o.typ.celType.TypeName(), typeDesc)
}

func (o *object) ConvertToType(typeVal ref.Type) ref.Val {
	switch typeVal {
	case types.TypeType:
		return o.typ.celType
	case o.typ.celType:
		return o
	}
	return types.NewErr("type conversion error from '%s' to '%s'", o.typ.celType, typeVal)
}

// Equal is identity: there is one value of each object per decision.
func (o *object) Equal(other ref.Val) ref.Val {
	return types.Bool(o == other)
}

func (o *object) Type() ref.Type { return o.typ.celType }

func (o *object) Value() any { return o }

// Get serves field access when the planner did not resolve the field
// statically (e.g. through dyn()).
func (o *object) Get(field ref.Val) ref.Val {
	name, ok := field.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(field)
	}
	i, ok := o.typ.index[string(name)]
	if !ok {
		return types.NewErr("no such field: %s", name)
	}
	return o.fields[i]
}

// IsSet serves has(): a field is set when it is not its type's zero value,
// so has(user.email) is false when the token carried no email.
func (o *object) IsSet(field ref.Val) ref.Val {
	name, ok := field.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(field)
	}
	i, ok := o.typ.index[string(name)]
	if !ok {
		return types.NewErr("no such field: %s", name)
	}
	return types.Bool(!isZero(o.fields[i]))
}

// provider adds the object types to the environment's type provider.
type provider struct {
	types.Provider
}

func (p provider) FindStructType(name string) (*types.Type, bool) {
	if t, ok := objectTypes[name]; ok {
		return types.NewTypeTypeWithParam(t.celType), true
	}
	return p.Provider.FindStructType(name)
}

func (p provider) FindStructFieldNames(name string) ([]string, bool) {
	if t, ok := objectTypes[name]; ok {
		return t.names, true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if t, ok := objectTypes[name]; ok {
		ft, ok := t.fields[field]
		return ft, ok
	}
	return p.Provider.FindStructFieldType(name, field)
}

// NewValue refuses to build the objects inside an expression: they describe
// the request, and a rule has no use for a forged one.
func (p provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := objectTypes[name]; ok {
		return types.NewErr("%s cannot be constructed in a rule", name)
	}
	return p.Provider.NewValue(name, fields)
}

// withObjectTypes is the cel.EnvOption that installs the provider over the
// environment's own.
func withObjectTypes() cel.EnvOption {
	return func(env *cel.Env) (*cel.Env, error) {
		return cel.CustomTypeProvider(provider{Provider: env.CELTypeProvider()})(env)
	}
}

// stringList converts a Go string slice to a CEL list once, so that
// iterating over it in a condition does not convert each element again.
func stringList(list []string) ref.Val {
	vals := make([]ref.Val, len(list))
	for i, s := range list {
		vals[i] = types.String(s)
	}
	return types.NewRefValList(types.DefaultTypeAdapter, vals)
}
