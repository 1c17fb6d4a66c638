import Testing

@testable import FleetAWS

struct XMLTreeTests {
    private static func parse(_ text: String) -> XMLTree? { XMLTree.parse(Array(text.utf8)) }

    // MARK: - Documents

    @Test func parsesListBucketResultInTheS3Namespace() throws {
        let document = try #require(
            Self.parse(
                """
                <?xml version="1.0" encoding="UTF-8"?>
                <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
                  <Name>fleet-data</Name>
                  <Prefix>logs/</Prefix>
                  <KeyCount>2</KeyCount>
                  <MaxKeys>1000</MaxKeys>
                  <IsTruncated>true</IsTruncated>
                  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
                  <Contents>
                    <Key>logs/a.bag</Key>
                    <LastModified>2025-11-06T10:00:00.000Z</LastModified>
                    <ETag>"9b2cf535f27731c974343645a3985328"</ETag>
                    <Size>1024</Size>
                    <StorageClass>STANDARD</StorageClass>
                  </Contents>
                  <Contents>
                    <Key>logs/b.bag</Key>
                    <Size>0</Size>
                  </Contents>
                </ListBucketResult>
                """
            )
        )
        #expect(document.name == "ListBucketResult")
        #expect(document["Name"] == "fleet-data")
        #expect(document["Prefix"] == "logs/")
        #expect(document["IsTruncated"] == "true")
        #expect(document["NextContinuationToken"] == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        let contents = document.all("Contents")
        #expect(contents.map { $0["Key"] } == ["logs/a.bag", "logs/b.bag"])
        #expect(contents.map { $0["Size"] } == ["1024", "0"])
        #expect(contents.first?["ETag"] == "\"9b2cf535f27731c974343645a3985328\"")
        #expect(document.child("Contents") === contents.first)
    }

    @Test func prefixedElementsAreFoundByLocalName() throws {
        let document = try #require(
            Self.parse(
                """
                <s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">\
                <s3:Name>fleet-data</s3:Name><s3:Contents><s3:Key>k</s3:Key></s3:Contents>\
                </s3:ListBucketResult>
                """
            )
        )
        #expect(document.name == "ListBucketResult")
        #expect(document["Name"] == "fleet-data")
        #expect(document.child("Contents")?["Key"] == "k")
    }

    @Test func parsesErrorDocument() throws {
        let document = try #require(
            Self.parse(
                """
                <?xml version="1.0" encoding="UTF-8"?>
                <Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>\
                <Key>logs/a.bag</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>
                """
            )
        )
        #expect(document.name == "Error")
        #expect(document["Code"] == "NoSuchKey")
        #expect(document["Message"] == "The specified key does not exist.")
        #expect(document["RequestId"] == "4442587FB7D0A2F9")
    }

    @Test func missingChildIsNil() throws {
        let document = try #require(Self.parse("<Error><Code>X</Code></Error>"))
        #expect(document["Message"] == nil)
        #expect(document.child("Message") == nil)
        #expect(document.all("Message").isEmpty)
    }

    @Test func emptyElementHasEmptyText() throws {
        let document = try #require(Self.parse("<R><Prefix/><Marker></Marker></R>"))
        #expect(document["Prefix"] == "")
        #expect(document["Marker"] == "")
    }

    // MARK: - Text

    @Test func entityEscapedTextIsDecoded() throws {
        let document = try #require(
            Self.parse("<R><Key>a &amp; b &lt;c&gt; &quot;q&quot; &apos;s&apos; &#x41;&#66;</Key></R>")
        )
        #expect(document["Key"] == "a & b <c> \"q\" 's' AB")
    }

    @Test func textSplitAcrossCallbacksIsJoined() throws {
        let long = String(repeating: "0123456789abcdef", count: 8192)
        let document = try #require(Self.parse("<R><Key>\(long)&amp;\(long)</Key><Next>é漢字</Next></R>"))
        #expect(document["Key"] == long + "&" + long)
        #expect(document["Next"] == "é漢字")
    }

    @Test func cdataTextIsKept() throws {
        let document = try #require(Self.parse("<R><Message><![CDATA[a <b> & c]]></Message></R>"))
        #expect(document["Message"] == "a <b> & c")
    }

    @Test(arguments: ["", "not xml", "<R>", "<R>a & b</R>", "<R>&bogus;</R>", "<R><a></b></R>"])
    func malformedXMLIsNil(text: String) {
        #expect(Self.parse(text) == nil)
    }

    @Test(arguments: [
        "<R><Key></R>",
        "<R></R><S></S>",
        "<R></R>junk",
        "<ListBucketResult><Name>b</Name><Contents><Key>a</Key></Contents>",
    ])
    func truncatedOrTrailingXMLIsNil(text: String) {
        // On Linux XMLParser.parse() returns true after some fatal errors; XMLTree must still refuse them.
        #expect(Self.parse(text) == nil)
    }

    // MARK: - Escaping

    @Test(arguments: [
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("\"", "&quot;"),
        ("'", "&apos;"),
        ("plain-etag_1.2", "plain-etag_1.2"),
        ("\"etag\" & <x>'s", "&quot;etag&quot; &amp; &lt;x&gt;&apos;s"),
        ("&amp;", "&amp;amp;"),
        ("é漢字", "é漢字"),
    ])
    func xmlEscapedEscapesMarkupCharacters(text: String, escaped: String) {
        #expect(xmlEscaped(text) == escaped)
    }

    @Test(arguments: ["\"9b2cf535f27731c974343645a3985328-2\"", "a & b <c> 'd' \"e\"", "&#x41;"])
    func escapedTextParsesBackToTheOriginal(text: String) throws {
        let document = try #require(Self.parse("<ETag>\(xmlEscaped(text))</ETag>"))
        #expect(document.text == text)
    }
}
