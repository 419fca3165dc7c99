import Foundation
import LocalProcess
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("LocalProcess: programs run to their end, free ports, PostgreSQL's binaries", .timeLimit(.minutes(1)))
struct LocalProcessTests {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-localprocess-\(UUID().uuidString)").path

    @Test func anExitCodeComesBackAndBothStreamsGoToTheFile() throws {
        defer { try? FileManager.default.removeItem(atPath: output) }
        let status = try LocalProcess.run("/bin/sh", ["-c", "echo out; echo err >&2; read line || echo no-stdin; exit 3"], outputPath: output)
        #expect(status == 3)
        let text = try String(contentsOfFile: output, encoding: .utf8)
        #expect(text.split(separator: "\n") == ["out", "err", "no-stdin"])
    }

    @Test func aProgramEndedByASignalReads128PlusItsNumber() throws {
        defer { try? FileManager.default.removeItem(atPath: output) }
        #expect(try LocalProcess.run("/bin/sh", ["-c", "kill -TERM $$"], outputPath: output) == 128 + SIGTERM)
    }

    @Test func checkThrowsWithWhatTheProgramPrinted() throws {
        #expect(throws: Never.self) { try LocalProcess.check("/bin/true", []) }
        let error = #expect(throws: LocalProcessError.self) {
            try LocalProcess.check("/bin/sh", ["-c", "echo the reason; exit 1"])
        }
        #expect(error?.description.contains("status 1") == true)
        #expect(error?.description.contains("the reason") == true)
        #expect(throws: LocalProcessError.self) { try LocalProcess.run("/no/such/program", [], outputPath: output) }
    }

    @Test func aFreePortCanBeBound() throws {
        let port = try LocalProcess.freePort()
        #expect((1...65535).contains(port))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(bound == 0)
    }

    @Test func postgresBinariesAreFoundWhereInitdbIs() {
        guard let directory = LocalProcess.postgresBinDirectory() else { return }  // PostgreSQL not installed
        #expect(FileManager.default.isExecutableFile(atPath: directory + "/initdb"))
        #expect(FileManager.default.isExecutableFile(atPath: directory + "/pg_ctl"))
    }
}
