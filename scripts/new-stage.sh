#!/usr/bin/env bash
# Writes the skeleton of a custom stage: steps 1 to 3 of docs/STAGES.md.
#
#   scripts/new-stage.sh KIND [Name]        e.g. scripts/new-stage.sh acme.nocaps NoCaps
#
# creates Plugins/Stage<Name>/ (<Name>Settings.swift: one example key; <Name>Stage.swift: a
# stage that lets everything through, and its factory), Tests/Stage<Name>Tests/, the two
# targets and the executable's dependency in Package.swift, and the registration in
# Sources/chatgate/CustomStages.swift. Name defaults to the kind's last part in UpperCamelCase.
# Step 4 is yours: fill in `process`, then name the kind in the config's `pipeline:`.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/new-stage.sh KIND [Name]   (KIND like acme.profanity, Name like Profanity)" >&2
  exit 2
}
fail() {
  echo "new-stage: error: $*" >&2
  exit 1
}

kind=${1:-}
name=${2:-}
[[ -n $kind && $# -le 2 ]] || usage
[[ $kind =~ ^[a-z0-9_-]+(\.[a-z0-9_-]+){1,3}$ ]] ||
  fail "kind '$kind': a custom kind is owner.name, lowercase letters, digits, '_' and '-' (acme.profanity)"
if [[ -z $name ]]; then
  # profanity -> Profanity, quiet_hours -> QuietHours
  name=$(printf '%s\n' "${kind##*.}" | awk -F'[_-]' '{ for (i = 1; i <= NF; i++) printf "%s%s", toupper(substr($i, 1, 1)), substr($i, 2) }')
fi
[[ $name =~ ^[A-Z][A-Za-z0-9]*$ ]] || fail "name '$name': use UpperCamelCase letters and digits (NoCaps)"

module="Stage$name"
registry=Sources/chatgate/CustomStages.swift
[[ ! -e Plugins/$module ]] || fail "Plugins/$module exists already"
[[ ! -e Tests/${module}Tests ]] || fail "Tests/${module}Tests exists already"
grep -q "// $kind\$" "$registry" && fail "kind '$kind' is registered already in $registry"
grep -q "\"$module\"" Package.swift && fail "Package.swift already has a target $module"
for marker in "stage targets" "stage dependencies" "test targets"; do
  grep -q "// new-stage: $marker above this line" Package.swift || fail "Package.swift lacks the line '// new-stage: $marker above this line'"
done

# Step 1: the module.
mkdir -p "Plugins/$module" "Tests/${module}Tests"
cat >"Plugins/$module/${name}Settings.swift" <<EOF
import GatewayCore

/// Settings of the \`$kind\` stage.
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | \`max_length\` | int | 1000 | 1...1000000: an example key; replace it with yours |
public struct ${name}Settings: Codable, Sendable {
    public var maxLength: Int

    enum CodingKeys: String, CodingKey {
        case maxLength = "max_length"
    }

    public init(maxLength: Int = 1000) { self.maxLength = maxLength }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxLength = try c.decodeIfPresent(Int.self, forKey: .maxLength) ?? 1000
        guard (1...1_000_000).contains(maxLength) else {
            throw DecodingError.dataCorruptedError(forKey: .maxLength, in: c, debugDescription: "must be 1...1000000 (was \\(maxLength))")
        }
    }
}
EOF
cat >"Plugins/$module/${name}Stage.swift" <<EOF
import GatewayCore

/// The \`$kind\` stage. (Say in one sentence what it does to a frame.)
public struct ${name}Stage: Stage {
    public let settings: ${name}Settings

    public init(settings: ${name}Settings) { self.settings = settings }

    public func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        // Read or change the envelope, then .continue, .reject(GatewayError(...)) or .reply(...):
        // docs/STAGES.md, "The envelope" and "The Stage protocol".
        .continue
    }

    public static let factory = StageFactory(kind: "$kind", settings: ${name}Settings.self) { settings, _ in
        ${name}Stage(settings: settings)
    }
}
EOF
cat >"Tests/${module}Tests/${name}StageTests.swift" <<EOF
import GatewayCore
import GatewayTesting
import $module
import Testing

@Suite struct ${name}StageTests {
    let harness = StageHarness()

    @Test func letsAMessageThrough() async throws {
        let stage = try harness.build(${name}Stage.factory)
        var envelope = harness.send("hello")
        #expect(try await harness.run(stage, &envelope).isContinue)
        #expect(envelope.body == "hello")
    }

    @Test func refusesABadSetting() {
        // Reported as the config loader reports it (StageSettings: its own decoder).
        #expect(StageSettings.problems(${name}Settings.self, in: #"{"max_length": 0}"#).map(\\.path) == ["settings.max_length"])
        #expect(throws: (any Error).self) {
            try harness.build(${name}Stage.factory, settings: #"{"max_length": 0}"#)
        }
    }
}
EOF

# Step 2: Package.swift (the target, the executable's dependency, the test target).
insert_above() { # file, marker, line
  awk -v marker="$2" -v line="$3" 'index($0, marker) { print line } { print }' "$1" >"$1.new-stage" && mv "$1.new-stage" "$1"
}
insert_above Package.swift "// new-stage: stage targets above this line" \
  "        .target(name: \"$module\", dependencies: [\"GatewayCore\"], path: \"Plugins/$module\", swiftSettings: swiftSettings),"
insert_above Package.swift "// new-stage: stage dependencies above this line" \
  "                \"$module\","
insert_above Package.swift "// new-stage: test targets above this line" \
  "        .testTarget(name: \"${module}Tests\", dependencies: [\"$module\", \"GatewayCore\", \"GatewayTesting\"], swiftSettings: swiftSettings),"

# Step 3: registration, imports and factories kept sorted (factories by kind).
start=$(grep -n 'static let factories: \[StageFactory\] = \[' "$registry" | cut -d: -f1)
end=$(awk -v s="$start" 'NR > s && /^    \]/ { print NR; exit }' "$registry")
[[ -n $start && -n $end ]] || fail "cannot find the factories list in $registry"
{
  { grep '^import ' "$registry"; echo "import $module"; } | LC_ALL=C sort -u
  awk -v s="$start" 'NR <= s && !/^import /' "$registry"
  { sed -n "$((start + 1)),$((end - 1))p" "$registry"; echo "        ${name}Stage.factory,  // $kind"; } |
    awk -F'// ' '{ print $2 "\t" $0 }' | LC_ALL=C sort | cut -f2-
  awk -v e="$end" 'NR >= e' "$registry"
} >"$registry.new-stage" && mv "$registry.new-stage" "$registry"

cat <<EOF
Created Plugins/$module/ (${name}Settings.swift, ${name}Stage.swift) and Tests/${module}Tests/;
added $module to Package.swift and registered $kind in $registry.
Next: write ${name}Stage.process, then put the stage in the config's pipeline:

  - stage: $kind
    settings: { max_length: 1000 }

and check: swift build && swift test --filter ${name}StageTests && .build/debug/chatgate check-config config.yaml
EOF
