import OCIImage
import RuntimeBundle
import Testing

@Suite struct UserDatabaseTests {
    static let db = UserDatabase(
        passwd: Array(
            """
            root:x:0:0:root:/root:/bin/sh
            # a comment
            app:x:1000:1000:App:/home/app:/bin/sh
            svc:x:200:300::/srv:/sbin/nologin
            broken line
            """.utf8),
        group: Array(
            """
            root:x:0:
            app:x:1000:
            staff:x:50:app,svc
            audio:x:63: app
            svcgrp:x:300:
            """.utf8))

    @Test(arguments: [
        ("", UserDatabase.Resolved(uid: 0, gid: 0, additionalGids: [], home: "/root")),
        ("root", .init(uid: 0, gid: 0, additionalGids: [], home: "/root")),
        ("app", .init(uid: 1000, gid: 1000, additionalGids: [50, 63], home: "/home/app")),
        ("1000", .init(uid: 1000, gid: 1000, additionalGids: [50, 63], home: "/home/app")),
        ("4242", .init(uid: 4242, gid: 0, additionalGids: [], home: nil)),
        ("app:staff", .init(uid: 1000, gid: 50, additionalGids: [], home: "/home/app")),
        ("app:77", .init(uid: 1000, gid: 77, additionalGids: [], home: "/home/app")),
        ("200:svcgrp", .init(uid: 200, gid: 300, additionalGids: [], home: "/srv")),
        ("4242:4243", .init(uid: 4242, gid: 4243, additionalGids: [], home: nil)),
        ("svc", .init(uid: 200, gid: 300, additionalGids: [50], home: "/srv")),
    ])
    func resolvesEveryForm(spec: String, expected: UserDatabase.Resolved) throws {
        #expect(try Self.db.resolve(spec) == expected)
    }

    @Test func unknownUserAndGroupAreNamed() {
        let user = #expect(throws: UnpackError.self) { try Self.db.resolve("nobody") }
        #expect(user?.code == .notFound)
        #expect(user?.message == "user \"nobody\" (from the image's User \"nobody\") is not in the image's /etc/passwd")
        let group = #expect(throws: UnpackError.self) { try Self.db.resolve("app:wheel") }
        #expect(group?.code == .notFound)
        #expect(
            group?.message == "group \"wheel\" (from the image's User \"app:wheel\") is not in the image's /etc/group")
    }

    @Test(arguments: ["app:", ":staff"])
    func malformedSpecs(spec: String) {
        let error = #expect(throws: UnpackError.self) { try Self.db.resolve(spec) }
        #expect(error?.code == .invalidImage)
    }

    @Test func noFilesMeansNumericOnly() throws {
        let empty = UserDatabase(passwd: nil, group: nil)
        #expect(try empty.resolve("") == .init(uid: 0, gid: 0, additionalGids: [], home: nil))
        #expect(try empty.resolve("12:34") == .init(uid: 12, gid: 34, additionalGids: [], home: nil))
        #expect(throws: UnpackError.self) { try empty.resolve("root") }
    }
}
